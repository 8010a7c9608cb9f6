package state

import (
	"bytes"
	"fmt"
)

// Message references are where a run's messages live in chat (a Slack
// ts per name: the board, each phase's thread, each gate's message). The
// poster owns them; they are kept apart from the run record, which the
// engine rewrites.

func messageKey(runID, name string) []byte { return []byte(runID + "\x00" + name) }

// PutMessageRef records the chat reference of one of a run's messages.
func (t *Tx) PutMessageRef(runID, name, ref string) error {
	if err := t.tx.Bucket(bucketMessages).Put(messageKey(runID, name), []byte(ref)); err != nil {
		return fmt.Errorf("recording message %s of run %s: %w", name, runID, err)
	}
	return nil
}

// MessageRefs returns every message reference of a run, by name.
func (t *Tx) MessageRefs(runID string) (map[string]string, error) {
	out := map[string]string{}
	b := t.tx.Bucket(bucketMessages)
	if b == nil { // a file opened read-only from before the bucket existed
		return out, nil
	}
	prefix := []byte(runID + "\x00")
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		out[string(k[len(prefix):])] = string(v)
	}
	return out, nil
}
