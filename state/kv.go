package state

import (
	"bytes"
	"fmt"
)

// The kv bucket holds small records of other parts of drbot that need no
// bucket of their own (the drill scheduler's last tick, postponed drills).

// PutKV writes key = value.
func (t *Tx) PutKV(key, value string) error {
	if err := t.tx.Bucket(bucketKV).Put([]byte(key), []byte(value)); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	return nil
}

// KV reads key.
func (t *Tx) KV(key string) (string, bool) {
	b := t.tx.Bucket(bucketKV)
	if b == nil {
		return "", false
	}
	v := b.Get([]byte(key))
	return string(v), v != nil
}

// KVPrefix lists every key with the prefix.
func (t *Tx) KVPrefix(prefix string) map[string]string {
	out := map[string]string{}
	b := t.tx.Bucket(bucketKV)
	if b == nil {
		return out
	}
	c := b.Cursor()
	for k, v := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, v = c.Next() {
		out[string(k)] = string(v)
	}
	return out
}
