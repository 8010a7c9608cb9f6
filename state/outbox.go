package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// Enqueue appends e to the outbox unless an entry with the same key exists.
// It reports whether the entry was added.
func (t *Tx) Enqueue(e OutboxEntry) (bool, error) {
	if e.Key == "" {
		return false, fmt.Errorf("enqueueing %s message: empty idempotency key", e.Kind)
	}
	keys := t.tx.Bucket(bucketOutboxKey)
	if keys.Get([]byte(e.Key)) != nil {
		return false, nil
	}
	b := t.tx.Bucket(bucketOutbox)
	seq, err := b.NextSequence()
	if err != nil {
		return false, fmt.Errorf("allocating outbox sequence: %w", err)
	}
	e.Seq = seq
	if e.CreatedAt.IsZero() {
		e.CreatedAt = t.now
	}
	if err := t.putJSON(bucketOutbox, u64(seq), e); err != nil {
		return false, err
	}
	if err := keys.Put([]byte(e.Key), u64(seq)); err != nil {
		return false, fmt.Errorf("indexing outbox key %q: %w", e.Key, err)
	}
	if err := indexRunEntry(t.tx, e.RunID, seq); err != nil {
		return false, err
	}
	return true, nil
}

// Outbox lists entries in order; with pendingOnly, only undelivered ones.
// limit ≤ 0 means all.
func (t *Tx) Outbox(pendingOnly bool, limit int) ([]OutboxEntry, error) {
	var out []OutboxEntry
	c := t.tx.Bucket(bucketOutbox).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var e OutboxEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("decoding outbox entry %d: %w", binary.BigEndian.Uint64(k), err)
		}
		if pendingOnly && e.Delivered() {
			continue
		}
		out = append(out, e)
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, nil
}

// PendingOutbox lists the undelivered entries from sequence number from
// on, in order. The dispatcher reads its whole queue before each delivery
// and knows that nothing below from is pending, so it seeks past the
// delivered history instead of decoding it.
func (t *Tx) PendingOutbox(from uint64) ([]OutboxEntry, error) {
	var out []OutboxEntry
	c := t.tx.Bucket(bucketOutbox).Cursor()
	for k, v := c.Seek(u64(from)); k != nil; k, v = c.Next() {
		var e OutboxEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("decoding outbox entry %d: %w", binary.BigEndian.Uint64(k), err)
		}
		if !e.Delivered() {
			out = append(out, e)
		}
	}
	return out, nil
}

// OutboxEntry reads one entry by sequence number.
func (t *Tx) OutboxEntry(seq uint64) (OutboxEntry, bool, error) {
	var e OutboxEntry
	ok, err := t.getJSON(bucketOutbox, u64(seq), &e)
	return e, ok, err
}

// OutboxEntryByKey reads the entry enqueued under an idempotency key.
func (t *Tx) OutboxEntryByKey(key string) (OutboxEntry, bool, error) {
	v := t.tx.Bucket(bucketOutboxKey).Get([]byte(key))
	if v == nil {
		return OutboxEntry{}, false, nil
	}
	return t.OutboxEntry(binary.BigEndian.Uint64(v))
}

// MarkDelivered records that entry seq reached its destination as ref.
func (t *Tx) MarkDelivered(seq uint64, ref string) error {
	e, ok, err := t.OutboxEntry(seq)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("marking outbox entry %d delivered: no such entry", seq)
	}
	e.DeliveredAt = t.now
	e.Ref = ref
	e.Attempts++
	e.LastError = ""
	return t.putJSON(bucketOutbox, u64(seq), e)
}

// MarkAttempt records a failed delivery attempt of entry seq.
func (t *Tx) MarkAttempt(seq uint64, deliveryErr string) error {
	e, ok, err := t.OutboxEntry(seq)
	if err != nil || !ok {
		return err
	}
	e.Attempts++
	e.LastError = deliveryErr
	return t.putJSON(bucketOutbox, u64(seq), e)
}
