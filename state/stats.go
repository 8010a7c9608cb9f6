package state

import (
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

// Stats are bbolt's counters for a Store, for benchmarks and metrics.
type Stats struct {
	// WriteTx is the file's committed write transactions over its whole
	// life (bbolt's meta txid): it survives restarts, so the difference
	// before and after a run counts the run's commits, made by any process.
	WriteTx uint64
	// ReadTx and PageWrites count what this process did since it opened
	// the Store: read transactions started and pages written.
	ReadTx     int
	PageWrites int64
	// FileBytes is the state file's size.
	FileBytes int64
}

// Stats reads the counters.
func (s *Store) Stats() (Stats, error) {
	var st Stats
	if err := s.db.View(func(tx *bolt.Tx) error {
		st.WriteTx = uint64(tx.ID())
		return nil
	}); err != nil {
		return st, fmt.Errorf("reading the state's transaction id: %w", err)
	}
	db := s.db.Stats()
	st.ReadTx = db.TxN
	st.PageWrites = db.TxStats.GetWrite()
	fi, err := os.Stat(s.path)
	if err != nil {
		return st, fmt.Errorf("reading the state file's size: %w", err)
	}
	st.FileBytes = fi.Size()
	return st, nil
}
