package state

import (
	"path/filepath"
	"testing"
)

// The write-transaction count lives in the file, so a benchmark can
// count a child process's commits after it exits; read transactions and
// the file size are reported too.
func TestStatsCountCommitsAcrossReopensAndReadsInThisProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drbot.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"a", "b", "c"} {
		if err := s.Update(func(tx *Tx) error { return tx.PutKV("k", v) }); err != nil {
			t.Fatal(err)
		}
	}
	after, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if got := after.WriteTx - before.WriteTx; got != 3 {
		t.Errorf("write transactions after three Updates = %d, want 3", got)
	}
	if after.ReadTx <= before.ReadTx || after.PageWrites <= before.PageWrites || after.FileBytes <= 0 {
		t.Errorf("stats did not move: before %+v, after %+v", before, after)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reopened, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if reopened.WriteTx != after.WriteTx {
		t.Errorf("write transactions after reopening = %d, want %d (kept in the file)", reopened.WriteTx, after.WriteTx)
	}
}
