package backup

import (
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/drbot/drbot/state"
)

// Mark says how far a state file has got, read from its contents rather than
// its mtime (a copy or a download resets the mtime).
type Mark struct {
	SchemaVersion uint64
	// OutboxSeq is the highest outbox sequence: it only grows in one file's life.
	OutboxSeq uint64
	// Newest is the latest time stamped on a run, step, outbox entry or audit entry.
	Newest time.Time
	Runs   int
}

// NewerThan reports whether m holds anything o does not: a later outbox
// entry or a later timestamp. Either one alone is enough to refuse an
// overwrite, so clock skew between regions cannot hide newer work.
func (m Mark) NewerThan(o Mark) bool {
	return m.OutboxSeq > o.OutboxSeq || m.Newest.After(o.Newest)
}

// ReadMark opens a state file read-only and reads its Mark.
func ReadMark(file string) (Mark, error) {
	st, err := state.Open(file, state.Options{ReadOnly: true, LockTimeout: time.Second})
	if err != nil {
		return Mark{}, err
	}
	defer st.Close()
	m := Mark{}
	if m.SchemaVersion, err = st.SchemaVersion(); err != nil {
		return Mark{}, fmt.Errorf("reading schema version of %q: %w", file, err)
	}
	later := func(ts ...time.Time) {
		for _, t := range ts {
			if t.After(m.Newest) {
				m.Newest = t
			}
		}
	}
	err = st.View(func(tx *state.Tx) error {
		runs, err := tx.Runs()
		if err != nil {
			return err
		}
		m.Runs = len(runs)
		for _, r := range runs {
			later(r.CreatedAt, r.StartedAt, r.FinishedAt)
			steps, err := tx.Steps(r.ID)
			if err != nil {
				return err
			}
			for _, s := range steps {
				later(s.StartedAt, s.FinishedAt)
			}
		}
		out, err := tx.Outbox(false, 0)
		if err != nil {
			return err
		}
		for _, e := range out {
			m.OutboxSeq = max(m.OutboxSeq, e.Seq)
			later(e.CreatedAt, e.DeliveredAt)
		}
		audit, err := tx.AuditLog("")
		if err != nil {
			return err
		}
		for _, e := range audit {
			later(e.Time)
		}
		return nil
	})
	if err != nil {
		return Mark{}, fmt.Errorf("reading %q: %w", file, err)
	}
	return m, nil
}

// checkPages walks every page of a bbolt file, which opening it does not:
// a copy damaged past its meta pages would otherwise pass.
func checkPages(file string) error {
	db, err := bolt.Open(file, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("opening %q: %w", file, err)
	}
	defer db.Close()
	fi, err := os.Stat(file)
	if err != nil {
		return fmt.Errorf("checking %q: %w", file, err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		// Walking pages past the end of a truncated file would fault.
		if tx.Size() > fi.Size() {
			return fmt.Errorf("file is %d bytes but its pages need %d: truncated", fi.Size(), tx.Size())
		}
		var errs []error
		for e := range tx.Check() {
			errs = append(errs, e)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return fmt.Errorf("checking %q: %w", file, err)
	}
	return nil
}
