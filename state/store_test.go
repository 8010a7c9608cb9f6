package state

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openTemp(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "drbot.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestHelperHoldState is not a test: the lock test runs the test binary as a
// second process that opens the state file and holds it.
func TestHelperHoldState(t *testing.T) {
	path := os.Getenv("DRBOT_HOLD_STATE")
	if path == "" {
		t.Skip("helper process only")
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	os.Stdout.WriteString("holding\n")
	time.Sleep(30 * time.Second)
}

func TestOpenFailsFastWhenAnotherProcessHoldsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drbot.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldState$")
	cmd.Env = append(os.Environ(), "DRBOT_HOLD_STATE="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "holding" {
		t.Fatalf("helper did not take the file: %q %v", line, err)
	}

	start := time.Now()
	_, err = Open(path, Options{})
	elapsed := time.Since(start)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("want ErrLocked, got %v", err)
	}
	if !strings.Contains(err.Error(), "another drbot") {
		t.Errorf("error should say another drbot holds the file: %v", err)
	}
	if elapsed > 2*time.Second {
		t.Errorf("second open took %s, want under 2s", elapsed)
	}
}

func TestOpenRefusesNewerSchemaWithoutRewritingIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drbot.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, u64(SchemaVersion+1)) }); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "schema version 2") {
		t.Fatalf("want a schema error naming version 2, got %v", err)
	}
	db, err = bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keySchema)); v != SchemaVersion+1 {
			t.Errorf("schema was rewritten to %d", v)
		}
		return nil
	})
}

func TestDecideFirstDecisionWinsLaterOnesReportTheWinner(t *testing.T) {
	s := openTemp(t)
	first := Decision{Key: "r1/gitops.merge/1", RunID: "r1", StepID: "gitops.merge", Kind: "approve", By: "U1"}
	second := first
	second.Kind, second.By = "reject", "U2"
	var won1, won2 bool
	var standing Decision
	err := s.Update(func(tx *Tx) error {
		var err error
		if _, won1, err = tx.Decide(first); err != nil {
			return err
		}
		standing, won2, err = tx.Decide(second)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !won1 || won2 {
		t.Fatalf("won1=%v won2=%v, want true,false", won1, won2)
	}
	if standing.By != "U1" || standing.Kind != "approve" {
		t.Errorf("standing decision = %+v, want U1's approve", standing)
	}
}

func TestEnqueueIsIdempotentByKeyKeepsOrderAndFindsAnEntryByKey(t *testing.T) {
	s := openTemp(t)
	err := s.Update(func(tx *Tx) error {
		for _, k := range []string{"a", "b", "a", "c", "b"} {
			if _, err := tx.Enqueue(OutboxEntry{Key: k, Kind: "test", Payload: json.RawMessage(`{}`)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	_ = s.View(func(tx *Tx) error {
		all, err := tx.Outbox(false, 0)
		for _, e := range all {
			keys = append(keys, e.Key)
		}
		return err
	})
	if strings.Join(keys, ",") != "a,b,c" {
		t.Fatalf("outbox keys = %v, want a,b,c", keys)
	}
	_ = s.View(func(tx *Tx) error {
		e, ok, err := tx.OutboxEntryByKey("c")
		if err != nil || !ok || e.Seq != 3 || e.Key != "c" {
			t.Errorf("OutboxEntryByKey(c) = %+v, %v, %v; want the third entry", e, ok, err)
		}
		if _, ok, _ := tx.OutboxEntryByKey("d"); ok {
			t.Error("OutboxEntryByKey found a key never enqueued")
		}
		return nil
	})
	if err := s.Update(func(tx *Tx) error { return tx.MarkDelivered(2, "1700000000.0001") }); err != nil {
		t.Fatal(err)
	}
	_ = s.View(func(tx *Tx) error {
		pending, _ := tx.Outbox(true, 0)
		if len(pending) != 2 || pending[0].Key != "a" || pending[1].Key != "c" {
			t.Errorf("pending = %+v, want a and c", pending)
		}
		return nil
	})
}

func TestUpdateCommitsStateAndOutboxTogetherOrNotAtAll(t *testing.T) {
	s := openTemp(t)
	boom := errors.New("boom")
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutStep(StepRecord{RunID: "r1", StepID: "cluster.create", Status: StepRunning}); err != nil {
			return err
		}
		if _, err := tx.Enqueue(OutboxEntry{Key: "r1/cluster.create/started", Kind: "step.started"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("want boom, got %v", err)
	}
	_ = s.View(func(tx *Tx) error {
		if _, ok, _ := tx.Step("r1", "cluster.create"); ok {
			t.Error("step journal entry survived a rolled-back transaction")
		}
		if all, _ := tx.Outbox(false, 0); len(all) != 0 {
			t.Errorf("outbox entry survived a rolled-back transaction: %+v", all)
		}
		return nil
	})
}

func TestLockAllowsOneRunPerTarget(t *testing.T) {
	s := openTemp(t)
	_ = s.Update(func(tx *Tx) error {
		if _, ok, err := tx.AcquireLock("prod-eu", "r1"); !ok || err != nil {
			t.Fatalf("first acquire: ok=%v err=%v", ok, err)
		}
		holder, ok, err := tx.AcquireLock("prod-eu", "r2")
		if ok || err != nil || holder.RunID != "r1" {
			t.Fatalf("second acquire: ok=%v holder=%+v err=%v", ok, holder, err)
		}
		if err := tx.ReleaseLock("prod-eu", "r2"); err != nil {
			t.Fatal(err)
		}
		if l, ok, _ := tx.Lock("prod-eu"); !ok || l.RunID != "r1" {
			t.Fatalf("release by a non-holder freed the lock")
		}
		if err := tx.ReleaseLock("prod-eu", "r1"); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := tx.AcquireLock("prod-eu", "r2"); !ok {
			t.Fatal("lock not free after release")
		}
		return nil
	})
}

func TestFirstSeenDedupesUntilExpiry(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s, err := Open(filepath.Join(t.TempDir(), "drbot.db"), Options{Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seen := func() bool {
		var first bool
		if err := s.Update(func(tx *Tx) (err error) { first, err = tx.FirstSeen("env-1", time.Hour); return }); err != nil {
			t.Fatal(err)
		}
		return first
	}
	if !seen() || seen() {
		t.Fatal("want first then duplicate")
	}
	now = now.Add(61 * time.Minute)
	var purged int
	_ = s.Update(func(tx *Tx) (err error) { purged, err = tx.PurgeExpired(); return })
	if purged != 1 {
		t.Errorf("purged %d keys, want 1", purged)
	}
	if !seen() {
		t.Error("an expired key should count as unseen")
	}
}

func TestBackupIsAConsistentReadableCopy(t *testing.T) {
	s := openTemp(t)
	_ = s.Update(func(tx *Tx) error {
		return tx.PutRun(Run{ID: "r1", Target: "prod-eu", Status: RunRunning})
	})
	dst := filepath.Join(t.TempDir(), "backup", "copy.db")
	n, err := s.Backup(dst)
	if err != nil || n == 0 {
		t.Fatalf("backup: n=%d err=%v", n, err)
	}
	copyStore, err := Open(dst, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer copyStore.Close()
	_ = copyStore.View(func(tx *Tx) error {
		r, ok, err := tx.Run("r1")
		if !ok || err != nil || r.Target != "prod-eu" {
			t.Errorf("backup lacks run r1: %+v %v", r, err)
		}
		return nil
	})
}

func TestAuditLogKeepsOrderAndFiltersByRun(t *testing.T) {
	s := openTemp(t)
	_ = s.Update(func(tx *Tx) error {
		for i, run := range []string{"r1", "r2", "r1"} {
			if err := tx.Audit(AuditEntry{Actor: "U1", Action: "approve", RunID: run, Result: string(rune('a' + i))}); err != nil {
				return err
			}
		}
		return nil
	})
	_ = s.View(func(tx *Tx) error {
		all, _ := tx.AuditLog("")
		r1, _ := tx.AuditLog("r1")
		if len(all) != 3 || len(r1) != 2 || r1[0].Result != "a" || r1[1].Result != "c" || r1[1].Seq <= r1[0].Seq {
			t.Errorf("audit all=%+v r1=%+v", all, r1)
		}
		return nil
	})
}
