package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// The readiness bucket keeps readiness reports, keyed by the time they
// were taken (big-endian Unix nanoseconds, so the cursor walks them in
// order). The state stores them as JSON without knowing their shape: the
// readiness package owns the type.
var bucketReadiness = []byte("readiness")

// MaxReadinessReports is how many reports are kept; older ones are dropped.
const MaxReadinessReports = 500

// SaveReadiness stores one report taken at at (as JSON) and drops the
// oldest beyond MaxReadinessReports.
func (t *Tx) SaveReadiness(at time.Time, report any) error {
	b := t.tx.Bucket(bucketReadiness)
	if b == nil {
		return fmt.Errorf("writing readiness report: the state has no readiness bucket (opened read-only?)")
	}
	key := u64(uint64(at.UnixNano()))
	for b.Get(key) != nil { // two reports in the same nanosecond keep both
		key = u64(binary.BigEndian.Uint64(key) + 1)
	}
	if err := t.putJSON(bucketReadiness, key, report); err != nil {
		return err
	}
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	for ; n > MaxReadinessReports; n-- {
		k, _ := b.Cursor().First()
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("dropping old readiness report: %w", err)
		}
	}
	return nil
}

// LatestReadiness decodes the newest report into v and reports whether
// there was one.
func (t *Tx) LatestReadiness(v any) (bool, error) {
	b := t.tx.Bucket(bucketReadiness)
	if b == nil {
		return false, nil
	}
	_, raw := b.Cursor().Last()
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("decoding the latest readiness report: %w", err)
	}
	return true, nil
}

// ReadinessReports lists the newest limit reports (all when limit ≤ 0),
// oldest first, as JSON.
func (t *Tx) ReadinessReports(limit int) []json.RawMessage {
	b := t.tx.Bucket(bucketReadiness)
	if b == nil {
		return nil
	}
	var out []json.RawMessage
	c := b.Cursor()
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		out = append(out, append(json.RawMessage(nil), v...))
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}
