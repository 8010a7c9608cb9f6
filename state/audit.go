package state

import (
	"encoding/json"
	"fmt"
)

// Audit appends one entry to the audit log. Entries are never rewritten.
func (t *Tx) Audit(e AuditEntry) error {
	b := t.tx.Bucket(bucketAudit)
	seq, err := b.NextSequence()
	if err != nil {
		return fmt.Errorf("allocating audit sequence: %w", err)
	}
	e.Seq = seq
	if e.Time.IsZero() {
		e.Time = t.now
	}
	return t.putJSON(bucketAudit, u64(seq), e)
}

// AuditLog lists the audit log in order; runID filters when not empty.
func (t *Tx) AuditLog(runID string) ([]AuditEntry, error) {
	var out []AuditEntry
	err := t.tx.Bucket(bucketAudit).ForEach(func(k, v []byte) error {
		var e AuditEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("decoding audit entry: %w", err)
		}
		if runID == "" || e.RunID == runID {
			out = append(out, e)
		}
		return nil
	})
	return out, err
}
