package state

import (
	"encoding/binary"
	"fmt"
	"time"
)

// AcquireLock takes target's lock for runID. If another run holds it, the
// holder is returned with acquired false. Taking a lock already held by the
// same run succeeds.
func (t *Tx) AcquireLock(target, runID string) (Lock, bool, error) {
	held, ok, err := t.Lock(target)
	if err != nil {
		return Lock{}, false, err
	}
	if ok && held.RunID != runID {
		return held, false, nil
	}
	l := Lock{Target: target, RunID: runID, Since: t.now}
	if ok {
		l.Since = held.Since
	}
	return l, true, t.putJSON(bucketLocks, []byte(target), l)
}

// Lock reads target's lock.
func (t *Tx) Lock(target string) (Lock, bool, error) {
	var l Lock
	ok, err := t.getJSON(bucketLocks, []byte(target), &l)
	return l, ok, err
}

// ReleaseLock frees target's lock if runID holds it.
func (t *Tx) ReleaseLock(target, runID string) error {
	held, ok, err := t.Lock(target)
	if err != nil || !ok || held.RunID != runID {
		return err
	}
	if err := t.tx.Bucket(bucketLocks).Delete([]byte(target)); err != nil {
		return fmt.Errorf("releasing lock on %q: %w", target, err)
	}
	return nil
}

// FirstSeen records key until now+ttl and reports whether this is the first
// time it was seen (an expired key counts as unseen). It is how redelivered
// Slack envelopes and double-clicked buttons get one effect.
func (t *Tx) FirstSeen(key string, ttl time.Duration) (bool, error) {
	b := t.tx.Bucket(bucketDedupe)
	if raw := b.Get([]byte(key)); raw != nil {
		if exp := time.Unix(0, int64(binary.BigEndian.Uint64(raw))); t.now.Before(exp) {
			return false, nil
		}
	}
	if err := b.Put([]byte(key), u64(uint64(t.now.Add(ttl).UnixNano()))); err != nil {
		return false, fmt.Errorf("recording dedupe key: %w", err)
	}
	return true, nil
}

// PurgeExpired drops dedupe keys past their expiry and reports how many.
func (t *Tx) PurgeExpired() (int, error) {
	b := t.tx.Bucket(bucketDedupe)
	var stale [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if !t.now.Before(time.Unix(0, int64(binary.BigEndian.Uint64(v)))) {
			stale = append(stale, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range stale {
		if err := b.Delete(k); err != nil {
			return 0, fmt.Errorf("purging dedupe key: %w", err)
		}
	}
	return len(stale), nil
}
