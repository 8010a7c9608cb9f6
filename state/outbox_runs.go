package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The outbox is also each run's event history (the post-mortem's timeline).
// outbox_runs indexes it by run, key runID NUL seq, so a run's history is
// read without decoding every run's entries: after a year of daily drills
// the outbox holds tens of thousands. meta's outbox_runs_indexed is the
// last sequence number the index is complete up to; entries after it (an
// older drbot appended them) are found by scanning, and indexed at the
// next read-write open.
var (
	bucketOutboxRuns = []byte("outbox_runs")
	keyRunsIndexed   = []byte("outbox_runs_indexed")
)

func runIndexKey(runID string, seq uint64) []byte {
	return append(append([]byte(runID), 0), u64(seq)...)
}

// indexedUpTo is the sequence number the run index is complete up to.
func indexedUpTo(tx *bolt.Tx) uint64 {
	if meta := tx.Bucket(bucketMeta); meta != nil {
		if v := meta.Get(keyRunsIndexed); v != nil {
			return binary.BigEndian.Uint64(v)
		}
	}
	return 0
}

// indexRunEntry adds entry seq of runID to the index and moves the mark
// when the index is complete up to it.
func indexRunEntry(tx *bolt.Tx, runID string, seq uint64) error {
	if runID != "" {
		if err := tx.Bucket(bucketOutboxRuns).Put(runIndexKey(runID, seq), []byte{}); err != nil {
			return fmt.Errorf("indexing outbox entry %d of run %s: %w", seq, runID, err)
		}
	}
	if indexedUpTo(tx) == seq-1 {
		return tx.Bucket(bucketMeta).Put(keyRunsIndexed, u64(seq))
	}
	return nil
}

// catchUpRunIndex indexes the entries appended after the mark (all of them
// in a state file from before the index).
func catchUpRunIndex(tx *bolt.Tx) error {
	from := indexedUpTo(tx)
	c := tx.Bucket(bucketOutbox).Cursor()
	last := from
	for k, v := c.Seek(u64(from + 1)); k != nil; k, v = c.Next() {
		var e OutboxEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("decoding outbox entry %d: %w", binary.BigEndian.Uint64(k), err)
		}
		last = binary.BigEndian.Uint64(k)
		if e.RunID != "" {
			if err := tx.Bucket(bucketOutboxRuns).Put(runIndexKey(e.RunID, last), []byte{}); err != nil {
				return fmt.Errorf("indexing outbox entry %d of run %s: %w", last, e.RunID, err)
			}
		}
	}
	if last == from {
		return nil
	}
	return tx.Bucket(bucketMeta).Put(keyRunsIndexed, u64(last))
}

// RunOutbox lists one run's outbox entries in order, delivered or not: the
// run's event history.
func (t *Tx) RunOutbox(runID string) ([]OutboxEntry, error) {
	upTo := indexedUpTo(t.tx)
	var seqs []uint64
	if idx := t.tx.Bucket(bucketOutboxRuns); idx != nil {
		prefix := append([]byte(runID), 0)
		c := idx.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if seq := binary.BigEndian.Uint64(k[len(prefix):]); seq <= upTo {
				seqs = append(seqs, seq)
			}
		}
	}
	out := make([]OutboxEntry, 0, len(seqs))
	for _, seq := range seqs {
		e, ok, err := t.OutboxEntry(seq)
		if err != nil {
			return nil, fmt.Errorf("reading outbox entry %d of run %s: %w", seq, runID, err)
		}
		if ok {
			out = append(out, e)
		}
	}
	// Past the mark the index may lack entries: scan them.
	c := t.tx.Bucket(bucketOutbox).Cursor()
	for k, v := c.Seek(u64(upTo + 1)); k != nil; k, v = c.Next() {
		var e OutboxEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("decoding outbox entry %d: %w", binary.BigEndian.Uint64(k), err)
		}
		if e.RunID == runID {
			out = append(out, e)
		}
	}
	return out, nil // the index is in sequence order, and the scan follows it
}
