package state

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func enqueueAll(t testing.TB, s *Store, entries ...OutboxEntry) {
	t.Helper()
	if err := s.Update(func(tx *Tx) error {
		for _, e := range entries {
			if _, err := tx.Enqueue(e); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func runEntry(run, key string) OutboxEntry {
	return OutboxEntry{Key: key, RunID: run, Kind: "test", Payload: json.RawMessage(`{}`)}
}

func runKeys(t *testing.T, s *Store, run string) string {
	t.Helper()
	var keys []string
	if err := s.View(func(tx *Tx) error {
		got, err := tx.RunOutbox(run)
		for _, e := range got {
			keys = append(keys, e.Key)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return strings.Join(keys, " ")
}

func TestRunOutboxListsOneRunsEntriesInOrder(t *testing.T) {
	s := openTemp(t)
	// Interleaved runs, one whose id is a prefix of the other's, and an
	// entry of no run (a drill announcement).
	enqueueAll(t, s, runEntry("prod-1", "prod-1/z"), runEntry("prod-10", "prod-10/a"), runEntry("", "announce"),
		runEntry("prod-1", "prod-1/a"), runEntry("prod-10", "prod-10/b"), runEntry("prod-1", "prod-1/m"))
	if got := runKeys(t, s, "prod-1"); got != "prod-1/z prod-1/a prod-1/m" {
		t.Errorf("RunOutbox(prod-1) = %q, want z a m (enqueue order, that run only)", got)
	}
	if got := runKeys(t, s, "prod-10"); got != "prod-10/a prod-10/b" {
		t.Errorf("RunOutbox(prod-10) = %q", got)
	}
}

// Entries an older drbot appended without indexing them (or a whole state
// file from before the index) are found by scanning, and indexed at the
// next read-write open.
func TestRunOutboxFindsEntriesAppendedWithoutTheIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drbot.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	enqueueAll(t, s, runEntry("prod-1", "indexed"))
	// What an older drbot does: append to the outbox, no index, no mark.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		for _, key := range []string{"old-1", "old-2"} {
			seq, _ := b.NextSequence()
			e := runEntry("prod-1", key)
			e.Seq = seq
			raw, _ := json.Marshal(e)
			if err := b.Put(u64(seq), raw); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	enqueueAll(t, s, runEntry("prod-1", "new")) // after the gap: indexed, the mark stays
	if got := runKeys(t, s, "prod-1"); got != "indexed old-1 old-2 new" {
		t.Errorf("before a reopen: %q", got)
	}
	_ = s.Close()

	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := runKeys(t, ro, "prod-1"); got != "indexed old-1 old-2 new" {
		t.Errorf("read-only, not caught up: %q", got)
	}
	_ = ro.Close()

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mark uint64
	_ = s.db.View(func(tx *bolt.Tx) error { mark = indexedUpTo(tx); return nil })
	if mark != 4 {
		t.Errorf("index mark after a read-write open = %d, want 4 (caught up)", mark)
	}
	if got := runKeys(t, s, "prod-1"); got != "indexed old-1 old-2 new" {
		t.Errorf("after catching up: %q", got)
	}
}

// A run's history is read through the index: the cost stays flat however
// many runs the state has seen (a year of daily drills is about 36,500
// entries), where decoding the whole outbox grows with it.
func BenchmarkRunOutboxWithAYearOfHistory(b *testing.B) {
	s := openTemp(b)
	payload := json.RawMessage(`{"kind":"step.succeeded","message":"` + strings.Repeat("x", 600) + `"}`)
	for run := range 365 {
		id := fmt.Sprintf("prod-%03d", run)
		var entries []OutboxEntry
		for i := range 100 {
			entries = append(entries, OutboxEntry{Key: fmt.Sprintf("%s/step/%d", id, i), RunID: id, Kind: "test", Payload: payload})
		}
		enqueueAll(b, s, entries...)
	}
	b.Run("RunOutbox", func(b *testing.B) {
		for b.Loop() {
			_ = s.View(func(tx *Tx) error {
				got, err := tx.RunOutbox("prod-200")
				if len(got) != 100 {
					b.Fatalf("%d entries, err %v", len(got), err)
				}
				return err
			})
		}
	})
	b.Run("whole outbox filtered", func(b *testing.B) {
		for b.Loop() {
			_ = s.View(func(tx *Tx) error {
				all, err := tx.Outbox(false, 0)
				n := 0
				for _, e := range all {
					if e.RunID == "prod-200" {
						n++
					}
				}
				if n != 100 {
					b.Fatalf("%d entries, err %v", n, err)
				}
				return err
			})
		}
	})
}
