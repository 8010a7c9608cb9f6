package state

import (
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the live file to path, while drbot
// keeps running (bbolt read transactions see one snapshot). The copy is
// written to a temporary file and renamed, so a partial backup never
// masquerades as a good one.
func (s *Store) Backup(path string) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return 0, fmt.Errorf("creating backup directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".drbot-backup-*")
	if err != nil {
		return 0, fmt.Errorf("creating backup file: %w", err)
	}
	defer os.Remove(tmp.Name())
	var n int64
	err = s.db.View(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(tmp)
		return err
	})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err != nil {
		return 0, fmt.Errorf("writing backup %q: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, fmt.Errorf("moving backup into place at %q: %w", path, err)
	}
	return n, nil
}
