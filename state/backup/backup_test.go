package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/drbot/drbot/state"
)

const bucket = "drbot-state-dr"

// newS3 serves an in-memory S3 on loopback and returns the real client
// pointed at it, with the bucket created.
func newS3(t *testing.T) *s3.Client {
	t.Helper()
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("S3 stand-in is not on loopback: %s", srv.URL)
	}
	client := s3.New(s3.Options{
		Region:       "eu-central-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIAEXAMPLEFAKE", "made-up-secret", ""),
	})
	if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("creating bucket: %v", err)
	}
	return client
}

// recorder passes calls to the real client and remembers when each upload
// arrived, so tests can check the spacing.
type recorder struct {
	S3API
	mu   sync.Mutex
	puts []put
	fail int // fail this many uploads first, as an S3 outage would
}

type put struct {
	key string
	at  time.Time
}

func (r *recorder) PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	r.mu.Lock()
	r.puts = append(r.puts, put{key: aws.ToString(in.Key), at: time.Now()})
	if r.fail > 0 {
		r.fail--
		r.mu.Unlock()
		return nil, errors.New("made-up outage: 503 Slow Down")
	}
	r.mu.Unlock()
	return r.S3API.PutObject(ctx, in, optFns...)
}

func (r *recorder) uploads() []put {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.puts)
}

func openStore(t *testing.T, path string) *state.Store {
	t.Helper()
	st, err := state.Open(path, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// addRun commits a run, a journaled step and the outbox entry reporting it,
// the way the engine does.
func addRun(t *testing.T, st *state.Store, id string) {
	t.Helper()
	err := st.Update(func(tx *state.Tx) error {
		if err := tx.PutRun(state.Run{ID: id, Target: "prod", Mode: state.ModeDrill, Status: state.RunRunning, CreatedAt: tx.Now(), StartedAt: tx.Now()}); err != nil {
			return err
		}
		if err := tx.PutStep(state.StepRecord{RunID: id, StepID: "cluster.create", Status: state.StepSucceeded, Attempt: 1, StartedAt: tx.Now(), FinishedAt: tx.Now(), Handle: "eks:" + id}); err != nil {
			return err
		}
		_, err := tx.Enqueue(state.OutboxEntry{Key: id + "/cluster.create/succeeded", RunID: id, Kind: "step.succeeded", Payload: json.RawMessage(`{}`)})
		return err
	})
	if err != nil {
		t.Fatalf("adding run %s: %v", id, err)
	}
}

// dump is everything a resumed drbot reads: runs, the journal, the outbox.
func dump(t *testing.T, st *state.Store) string {
	t.Helper()
	out := map[string]any{}
	err := st.View(func(tx *state.Tx) error {
		runs, err := tx.Runs()
		if err != nil {
			return err
		}
		out["runs"] = runs
		for _, r := range runs {
			steps, err := tx.Steps(r.ID)
			if err != nil {
				return err
			}
			out["steps/"+r.ID] = steps
		}
		if out["outbox"], err = tx.Outbox(false, 0); err != nil {
			return err
		}
		out["audit"], err = tx.AuditLog("")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func dumpFile(t *testing.T, path string) string {
	t.Helper()
	st, err := state.Open(path, state.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	defer st.Close()
	return dump(t, st)
}

func runCount(t *testing.T, path string) int {
	t.Helper()
	m, err := ReadMark(path)
	if err != nil {
		t.Fatal(err)
	}
	return m.Runs
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startRun(t *testing.T, u *Uploader) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestChangesUploadAtMostOncePerDebounceAndRestoreEqualsSource(t *testing.T) {
	const debounce = 400 * time.Millisecond
	rec := &recorder{S3API: newS3(t)}
	src := filepath.Join(t.TempDir(), "drbot.db")
	st := openStore(t, src)
	u := New(st, rec, Options{Bucket: bucket, Prefix: "/prod/drbot/", Debounce: debounce, Idle: time.Hour, Logger: quiet()})
	startRun(t, u)
	waitFor(t, 2*time.Second, "the start-up upload", func() bool { return len(rec.uploads()) == 1 })

	// Committed changes for 2 s, every 25 ms, as a busy run makes them.
	var lastChange time.Time
	for i := range 80 {
		addRun(t, st, fmt.Sprintf("run-%02d", i))
		u.Changed()
		lastChange = time.Now()
		time.Sleep(25 * time.Millisecond)
	}
	want := dump(t, st)
	waitFor(t, debounce+2*time.Second, "the last change to be uploaded", func() bool {
		ups := rec.uploads()
		return ups[len(ups)-1].at.After(lastChange)
	})
	time.Sleep(2 * debounce) // nothing more is pending: no further uploads may come
	ups := rec.uploads()
	if len(ups) < 4 {
		t.Fatalf("2s of changes with a %s debounce made only %d uploads; changes waited too long", debounce, len(ups))
	}
	// The gap is measured at arrival, after the snapshot; allow for the
	// snapshot time varying between two uploads.
	const slack = 60 * time.Millisecond
	for i := 1; i < len(ups); i++ {
		if gap := ups[i].at.Sub(ups[i-1].at); gap < debounce-slack {
			t.Errorf("uploads %s and %s only %s apart; want at most one per %s", ups[i-1].key, ups[i].key, gap, debounce)
		}
		if ups[i].key <= ups[i-1].key {
			t.Errorf("keys do not sort by upload order: %s after %s", ups[i].key, ups[i-1].key)
		}
	}
	for _, p := range ups {
		if !strings.HasPrefix(p.key, "prod/drbot/drbot-") || !IsBackupKey(p.key) {
			t.Errorf("key %q is not <prefix>/drbot-<time>.db", p.key)
		}
	}

	dst := filepath.Join(t.TempDir(), "restored", "drbot.db")
	b, prefix, err := ParseS3URL("s3://" + bucket + "/prod/drbot")
	if err != nil {
		t.Fatal(err)
	}
	key, err := Restore(context.Background(), rec, b, prefix, dst, false)
	if err != nil {
		t.Fatalf("restoring newest: %v", err)
	}
	if key != ups[len(ups)-1].key {
		t.Errorf("restored %s; want the newest %s", key, ups[len(ups)-1].key)
	}
	if got := dumpFile(t, dst); got != want {
		t.Errorf("restored state differs from the source\n got: %.300s\nwant: %.300s", got, want)
	}
}

func TestUploadedObjectCarriesSchemaOutboxSeqAndHash(t *testing.T) {
	client := newS3(t)
	st := openStore(t, filepath.Join(t.TempDir(), "drbot.db"))
	addRun(t, st, "run-a")
	addRun(t, st, "run-b")
	u := New(st, client, Options{Bucket: bucket, Logger: quiet(), Clock: func() time.Time {
		return time.Date(2026, 11, 25, 22, 50, 1, 234_567_000, time.FixedZone("CET", 3600))
	}})
	key, err := u.UploadNow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if key != "drbot-20261125T215001.234Z.db" {
		t.Errorf("key = %q; want the UTC time to the millisecond", key)
	}
	out, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	for k, want := range map[string]string{metaSchema: fmt.Sprint(state.SchemaVersion), metaOutboxSeq: "2"} {
		if got, _ := metadata(out.Metadata, k); got != want {
			t.Errorf("metadata %s = %q; want %q (all: %v)", k, got, want, out.Metadata)
		}
	}
	if got, _ := metadata(out.Metadata, metaSHA256); len(got) != 64 {
		t.Errorf("metadata %s = %q; want a hex sha256", metaSHA256, got)
	}
}

func TestIdleUploadHappensWithoutChanges(t *testing.T) {
	rec := &recorder{S3API: newS3(t)}
	st := openStore(t, filepath.Join(t.TempDir(), "drbot.db"))
	addRun(t, st, "run-a")
	u := New(st, rec, Options{Bucket: bucket, Debounce: time.Hour, Idle: 300 * time.Millisecond, Logger: quiet()})
	startRun(t, u)
	waitFor(t, 3*time.Second, "two idle uploads after the start-up one", func() bool { return len(rec.uploads()) >= 3 })
	ups := rec.uploads()
	for i := 1; i < len(ups); i++ {
		if gap := ups[i].at.Sub(ups[i-1].at); gap < 250*time.Millisecond {
			t.Errorf("idle uploads %s apart; want about 300ms", gap)
		}
	}
}

func TestRunShipsPendingChangesOnShutdown(t *testing.T) {
	rec := &recorder{S3API: newS3(t)}
	src := filepath.Join(t.TempDir(), "drbot.db")
	st := openStore(t, src)
	u := New(st, rec, Options{Bucket: bucket, Debounce: time.Hour, Idle: time.Hour, Logger: quiet()})
	stop := startRun(t, u)
	waitFor(t, 2*time.Second, "the start-up upload", func() bool { return len(rec.uploads()) == 1 })
	addRun(t, st, "run-last")
	u.Changed()
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if n := len(rec.uploads()); n != 2 {
		t.Fatalf("%d uploads; want the start-up one and one on shutdown", n)
	}
	dst := filepath.Join(t.TempDir(), "drbot.db")
	if _, err := Restore(context.Background(), rec, bucket, "", dst, false); err != nil {
		t.Fatal(err)
	}
	if got, want := dumpFile(t, dst), dump(t, st); got != want {
		t.Errorf("the shutdown upload lacks the last change\n got: %.300s\nwant: %.300s", got, want)
	}
}

func TestRetentionDeletesOldestBeyondKeep(t *testing.T) {
	client := newS3(t)
	ctx := context.Background()
	// Objects retention must not touch: another prefix, a nested folder, a stray file.
	for _, k := range []string{"other/drbot-20200101T000000.000Z.db", "prod/old/drbot-20200101T000000.000Z.db", "prod/notes.txt"} {
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	st := openStore(t, filepath.Join(t.TempDir(), "drbot.db"))
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	u := New(st, client, Options{Bucket: bucket, Prefix: "prod", Keep: 3, Logger: quiet(), Clock: func() time.Time { return now }})
	var keys []string
	for i := range 5 {
		addRun(t, st, fmt.Sprintf("run-%d", i))
		now = now.Add(time.Minute)
		key, err := u.UploadNow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	got, err := List(ctx, client, bucket, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, keys[2:]) {
		t.Errorf("kept %v; want the newest three %v", got, keys[2:])
	}
	all, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var rest []string
	for _, o := range all.Contents {
		if k := aws.ToString(o.Key); !IsBackupKey(k) || !strings.HasPrefix(k, "prod/drbot-") {
			rest = append(rest, k)
		}
	}
	if len(rest) != 3 {
		t.Errorf("retention touched objects outside its copies: left %v", rest)
	}
}

func TestRestoreRefusesNewerLocalFileWithoutForce(t *testing.T) {
	client := newS3(t)
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "drbot.db")
	st, err := state.Open(src, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	addRun(t, st, "run-a")
	older := filepath.Join(dir, "older", "drbot.db")
	if _, err := st.Backup(older); err != nil {
		t.Fatal(err)
	}
	addRun(t, st, "run-b")
	key, err := New(st, client, Options{Bucket: bucket, Prefix: "prod", Logger: quiet()}).UploadNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	addRun(t, st, "run-c") // the local file is now ahead of the backup

	if _, err := Restore(ctx, client, bucket, key, src, true); !errors.Is(err, state.ErrLocked) {
		t.Errorf("restore over a file drbot holds, even forced: err = %v; want ErrLocked", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := Restore(ctx, client, bucket, "prod", src, false); !errors.Is(err, ErrLocalNewer) {
		t.Fatalf("restore over a newer file: err = %v; want ErrLocalNewer", err)
	}
	if n := runCount(t, src); n != 3 {
		t.Fatalf("refused restore changed the local file: %d runs; want 3", n)
	}
	if _, err := os.Stat(src + ".before-restore"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused restore moved the local file aside: %v", err)
	}

	if got, err := Restore(ctx, client, bucket, "prod", older, false); err != nil || got != key {
		t.Fatalf("restore over an older file: key %q err %v; want %q", got, err, key)
	}
	if n := runCount(t, older); n != 2 {
		t.Errorf("restored over the older file: %d runs; want the backup's 2", n)
	}

	if _, err := Restore(ctx, client, bucket, "prod", src, true); err != nil {
		t.Fatalf("forced restore: %v", err)
	}
	if n := runCount(t, src); n != 2 {
		t.Errorf("forced restore: %d runs; want the backup's 2", n)
	}
	if n := runCount(t, src+".before-restore"); n != 3 {
		t.Errorf("the replaced file was not kept aside: %d runs; want 3", n)
	}
}

func TestRestoreRefusesCorruptedObject(t *testing.T) {
	client := newS3(t)
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "drbot.db"))
	for i := range 20 {
		addRun(t, st, fmt.Sprintf("run-%02d", i))
	}
	key, err := New(st, client, Options{Bucket: bucket, Prefix: "prod", Logger: quiet()}).UploadNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	good, err := io.ReadAll(obj.Body)
	obj.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0xff

	cases := []struct {
		name string
		body []byte
		meta map[string]string
		want string
	}{
		{"bit flip caught by the recorded hash", flipped, obj.Metadata, "does not match"},
		{"not a bbolt file", bytes.Repeat([]byte("garbage!"), 4096), nil, "not a usable drbot state file"},
		{"truncated", good[:len(good)/3], nil, "not a usable drbot state file"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := KeyFor("bad", time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC))
			if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: bytes.NewReader(c.body), Metadata: c.meta}); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			dst := filepath.Join(dir, "drbot.db")
			_, err := Restore(ctx, client, bucket, k, dst, true)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v; want it to say %q", err, c.want)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("a refused restore left files behind: %v", left)
			}
		})
	}
}

func TestParseS3URL(t *testing.T) {
	for in, want := range map[string][2]string{
		"s3://b":                                 {"b", ""},
		"s3://b/prod/drbot/":                     {"b", "prod/drbot"},
		"s3://b/p/drbot-20260101T000000.000Z.db": {"b", "p/drbot-20260101T000000.000Z.db"},
	} {
		b, k, err := ParseS3URL(in)
		if err != nil || b != want[0] || k != want[1] {
			t.Errorf("ParseS3URL(%q) = %q, %q, %v; want %q, %q", in, b, k, err, want[0], want[1])
		}
	}
	for _, bad := range []string{"https://b/k", "s3:///k", "/tmp/x"} {
		if _, _, err := ParseS3URL(bad); err == nil {
			t.Errorf("ParseS3URL(%q) accepted", bad)
		}
	}
}

func TestFailedUploadIsRetriedAfterDebounce(t *testing.T) {
	const debounce = 200 * time.Millisecond
	rec := &recorder{S3API: newS3(t), fail: 2}
	st := openStore(t, filepath.Join(t.TempDir(), "drbot.db"))
	addRun(t, st, "run-a")
	u := New(st, rec, Options{Bucket: bucket, Debounce: debounce, Idle: time.Hour, Logger: quiet()})
	startRun(t, u)
	waitFor(t, 3*time.Second, "a third attempt after two failures", func() bool { return len(rec.uploads()) >= 3 })
	ups := rec.uploads()
	for i := 1; i < len(ups); i++ {
		if gap := ups[i].at.Sub(ups[i-1].at); gap < debounce-60*time.Millisecond {
			t.Errorf("retry %s after the failure; want it to wait the %s debounce", gap, debounce)
		}
	}
	// The recorder sees an attempt when it starts; the third one's object
	// lands a moment later.
	var keys []string
	waitFor(t, 3*time.Second, "the retried upload stored", func() bool {
		var err error
		keys, err = List(context.Background(), rec, bucket, "")
		return err == nil && len(keys) > 0
	})
	if len(keys) != 1 || keys[0] != ups[2].key {
		t.Errorf("stored %v; want only the retried upload %s", keys, ups[2].key)
	}
}

func TestRestoreTakesAHandNamedKey(t *testing.T) {
	client := newS3(t)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "drbot.db")
	st := openStore(t, src)
	addRun(t, st, "run-a")
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if _, err := st.Backup(copyPath); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("manual/before-upgrade.db"), Body: f}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "drbot.db")
	if _, err := Restore(ctx, client, bucket, "manual/before-upgrade.db", dst, false); err != nil {
		t.Fatal(err)
	}
	if got, want := dumpFile(t, dst), dump(t, st); got != want {
		t.Errorf("restored state differs from the copy")
	}
	if _, err := Restore(ctx, client, bucket, "nothing-here", dst, false); err == nil || !strings.Contains(err.Error(), "no drbot backups") {
		t.Errorf("restore from an empty prefix: err = %v; want no drbot backups", err)
	}
}
