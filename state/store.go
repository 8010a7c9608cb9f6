// Package state is drbot's durable memory: runs, the step journal, approvals,
// the outbox, the audit log, target locks and dedupe keys, in one bbolt file.
// Every state change and the outbox entries that report it commit in one
// transaction (Store.Update), so a crash neither loses nor doubles a message.
package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout this build reads and writes. A file with a
// newer version is refused rather than rewritten.
const SchemaVersion = 1

var (
	bucketMeta      = []byte("meta")
	bucketRuns      = []byte("runs")
	bucketSteps     = []byte("steps")
	bucketDecisions = []byte("decisions")
	bucketOutbox    = []byte("outbox")
	bucketOutboxKey = []byte("outbox_keys")
	bucketAudit     = []byte("audit")
	bucketLocks     = []byte("locks")
	bucketDedupe    = []byte("dedupe")
	bucketMessages  = []byte("messages")
	bucketKV        = []byte("kv")
	allBuckets      = [][]byte{bucketMeta, bucketRuns, bucketSteps, bucketDecisions, bucketOutbox, bucketOutboxKey, bucketOutboxRuns, bucketAudit, bucketLocks, bucketDedupe, bucketMessages, bucketKV, bucketReadiness}
	keySchema       = []byte("schema_version")
)

// ErrLocked is returned by Open when another process holds the file.
var ErrLocked = errors.New("state file is held by another process")

// Options tune Open.
type Options struct {
	// LockTimeout bounds the wait for the file lock (default 1s).
	LockTimeout time.Duration
	// Clock stamps records; nil means time.Now.
	Clock func() time.Time
	// ReadOnly opens the file for inspection without taking the write lock.
	ReadOnly bool
}

// Store is the bbolt-backed state.
type Store struct {
	db    *bolt.DB
	clock func() time.Time
	path  string
}

// Open opens (creating if needed) the state file at path.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = time.Second
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("creating state directory for %q: %w", path, err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, ReadOnly: opts.ReadOnly})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("opening state %q: %w after %s; a possible cause is another drbot already running on this file", path, ErrLocked, opts.LockTimeout)
		}
		return nil, fmt.Errorf("opening state %q: %w", path, err)
	}
	s := &Store{db: db, clock: opts.Clock, path: path}
	if err := s.checkSchema(opts.ReadOnly); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) checkSchema(readOnly bool) error {
	check := func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if readOnly {
				return fmt.Errorf("state %q is empty or not a drbot state file", s.path)
			}
			return nil
		}
		raw := meta.Get(keySchema)
		if raw == nil {
			return fmt.Errorf("state %q has no schema version; it is not a drbot state file", s.path)
		}
		v := binary.BigEndian.Uint64(raw)
		if v > SchemaVersion {
			return fmt.Errorf("state %q has schema version %d but this drbot reads up to %d; upgrade drbot instead of rewriting the file", s.path, v, SchemaVersion)
		}
		return nil
	}
	if readOnly {
		return s.db.View(check)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := check(tx); err != nil {
			return err
		}
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("creating bucket %s: %w", b, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if meta.Get(keySchema) == nil {
			if err := meta.Put(keySchema, u64(SchemaVersion)); err != nil {
				return err
			}
		}
		return catchUpRunIndex(tx)
	})
}

// Path is the file the store lives in.
func (s *Store) Path() string { return s.path }

// Close releases the file.
func (s *Store) Close() error { return s.db.Close() }

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.clock() }

// Update runs fn in one read-write transaction: everything fn writes
// commits together or not at all.
func (s *Store) Update(fn func(*Tx) error) error {
	return s.db.Update(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx, now: s.clock()}) })
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(*Tx) error) error {
	return s.db.View(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx, now: s.clock()}) })
}

// SchemaVersion reads the version stored in the file.
func (s *Store) SchemaVersion() (uint64, error) {
	var v uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if raw := tx.Bucket(bucketMeta).Get(keySchema); raw != nil {
			v = binary.BigEndian.Uint64(raw)
		}
		return nil
	})
	return v, err
}

// Tx is one transaction over the state.
type Tx struct {
	tx  *bolt.Tx
	now time.Time
}

// Now is the transaction's timestamp.
func (t *Tx) Now() time.Time { return t.now }

func (t *Tx) putJSON(bucket []byte, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s/%s: %w", bucket, key, err)
	}
	if err := t.tx.Bucket(bucket).Put(key, raw); err != nil {
		return fmt.Errorf("writing %s/%s: %w", bucket, key, err)
	}
	return nil
}

func (t *Tx) getJSON(bucket []byte, key []byte, v any) (bool, error) {
	raw := t.tx.Bucket(bucket).Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("decoding %s/%s: %w", bucket, key, err)
	}
	return true, nil
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}
