// Package backup copies drbot's state file to S3, in another region than the
// one drbot runs in, so that drbot survives the loss of its own region, and
// restores it from there.
//
// An Uploader takes a consistent copy (Store.Backup: one bbolt read
// transaction) after committed changes, debounced so that at most one upload
// happens per Debounce and no committed change waits longer than Debounce to
// leave the region; when nothing changes it still uploads every Idle. It keeps
// the newest Keep copies under its prefix. Restore downloads one copy,
// validates it and refuses to replace a newer local file unless forced.
package backup

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/drbot/drbot/state"
)

// S3API is the part of the S3 client that backups use; *s3.Client has it.
type S3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Defaults for Options.
const (
	DefaultDebounce = 10 * time.Second
	DefaultIdle     = time.Hour
	DefaultKeep     = 48
)

// finalFlushTimeout bounds the upload Run makes after its context ends, so a
// SIGTERM still ships the last changes within a pod's grace period.
const finalFlushTimeout = 20 * time.Second

// Object metadata written with every copy (S3 stores them as x-amz-meta-*).
const (
	metaSchema    = "drbot-schema-version"
	metaOutboxSeq = "drbot-outbox-seq"
	metaNewest    = "drbot-newest"
	metaSHA256    = "drbot-sha256"
)

// Options configure an Uploader.
type Options struct {
	Bucket string
	// Prefix is the "folder" copies go under; "" means the bucket root.
	Prefix string
	// Debounce is the longest a committed change waits before it is
	// uploaded, and the shortest gap between two uploads (default 10s).
	Debounce time.Duration
	// Idle is the gap between uploads when nothing changes (default 1h).
	Idle time.Duration
	// Keep is how many copies stay under Prefix (default 48).
	Keep int
	// Clock names the copies; nil means time.Now. Scheduling uses real timers.
	Clock  func() time.Time
	Logger *slog.Logger
	// TempDir holds the local copy while it uploads; default is the state
	// file's directory, which is writable even on a read-only root filesystem.
	TempDir string
}

// Uploader ships copies of a Store to S3.
type Uploader struct {
	store *state.Store
	s3    S3API
	opts  Options
	kick  chan struct{}

	mu      sync.Mutex
	pending bool      // a change committed since the last upload started
	first   time.Time // when the first such change was reported

	upMu    sync.Mutex // one upload at a time
	lastKey time.Time  // name time of the last upload, to keep keys increasing
}

// New prepares an Uploader; Run starts it.
func New(store *state.Store, api S3API, opts Options) *Uploader {
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.Idle <= 0 {
		opts.Idle = DefaultIdle
	}
	if opts.Keep <= 0 {
		opts.Keep = DefaultKeep
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.TempDir == "" {
		opts.TempDir = filepath.Dir(store.Path())
	}
	opts.Prefix = strings.Trim(opts.Prefix, "/")
	return &Uploader{store: store, s3: api, opts: opts, kick: make(chan struct{}, 1)}
}

// Changed reports a committed state change (wire it to the engine's
// OnEnqueue). It never blocks: the change is uploaded by Run no later than
// Debounce after the first change since the last upload.
func (u *Uploader) Changed() {
	u.mu.Lock()
	if u.pending {
		u.mu.Unlock()
		return
	}
	u.pending, u.first = true, time.Now()
	u.mu.Unlock()
	select {
	case u.kick <- struct{}{}:
	default:
	}
}

// Run uploads until ctx ends: once at start (the file may hold changes the
// previous process did not ship), after changes, and every Idle otherwise.
// When ctx ends with changes not yet shipped it makes one last upload.
// Close the store only after Run returned.
func (u *Uploader) Run(ctx context.Context) error {
	u.Changed()
	var last time.Time // start of the last upload attempt; zero before the first
	idleFrom := time.Now()
	for {
		u.mu.Lock()
		pending, first := u.pending, u.first
		u.mu.Unlock()
		due := idleFrom.Add(u.opts.Idle)
		if pending {
			due = first
			if next := last.Add(u.opts.Debounce); !last.IsZero() && next.After(due) {
				due = next
			}
		}
		timer := time.NewTimer(time.Until(due))
		select {
		case <-ctx.Done():
			timer.Stop()
			return u.finalFlush(ctx)
		case <-u.kick:
			timer.Stop()
			continue
		case <-timer.C:
		}
		reason := "idle"
		if pending {
			reason = "changed"
		}
		// Clear before the snapshot so a change committed during the upload
		// schedules the next one.
		u.mu.Lock()
		u.pending = false
		u.mu.Unlock()
		last, idleFrom = time.Now(), time.Now()
		if _, err := u.UploadNow(ctx); err != nil {
			// What this upload would have shipped is still at risk.
			u.mu.Lock()
			if !u.pending {
				u.pending, u.first = true, last
			}
			u.mu.Unlock()
			if ctx.Err() != nil {
				return u.finalFlush(ctx)
			}
			u.opts.Logger.Error("uploading state backup; retrying", "reason", reason, "retry_in", u.opts.Debounce, "err", err)
		}
	}
}

func (u *Uploader) finalFlush(ctx context.Context) error {
	u.mu.Lock()
	pending := u.pending
	u.pending = false
	u.mu.Unlock()
	if !pending {
		return nil
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalFlushTimeout)
	defer cancel()
	if _, err := u.UploadNow(fctx); err != nil {
		return fmt.Errorf("uploading state backup on shutdown: %w", err)
	}
	return nil
}

// UploadNow takes a consistent copy of the store, uploads it and prunes old
// copies beyond Keep. It returns the object key.
func (u *Uploader) UploadNow(ctx context.Context) (string, error) {
	u.upMu.Lock()
	defer u.upMu.Unlock()
	tmp := filepath.Join(u.opts.TempDir, fmt.Sprintf(".drbot-s3-upload-%d.db", time.Now().UnixNano()))
	defer os.Remove(tmp)
	size, err := u.store.Backup(tmp)
	if err != nil {
		return "", err
	}
	info, err := inspect(tmp)
	if err != nil {
		return "", fmt.Errorf("checking the copy before upload: %w", err)
	}
	f, err := os.Open(tmp)
	if err != nil {
		return "", fmt.Errorf("opening the copy for upload: %w", err)
	}
	defer f.Close()
	key := u.nextKey()
	_, err = u.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         aws.String(u.opts.Bucket),
		Key:            aws.String(key),
		Body:           f,
		ContentLength:  aws.Int64(size),
		ContentType:    aws.String("application/octet-stream"),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(info.sum)),
		Metadata:       info.metadata(),
	})
	if err != nil {
		return "", fmt.Errorf("uploading state to s3://%s/%s: %w", u.opts.Bucket, key, err)
	}
	u.opts.Logger.Info("state backed up", "bucket", u.opts.Bucket, "key", key, "bytes", size, "outbox_seq", info.mark.OutboxSeq)
	if err := u.prune(ctx); err != nil {
		// A failed prune costs storage, not safety: the new copy is in.
		u.opts.Logger.Warn("pruning old state backups", "bucket", u.opts.Bucket, "prefix", u.opts.Prefix, "err", err)
	}
	return key, nil
}

// nextKey names a copy by its time, one millisecond past the previous name
// if the clock did not move, so names sort in upload order.
func (u *Uploader) nextKey() string {
	t := u.opts.Clock().UTC().Truncate(time.Millisecond)
	if !t.After(u.lastKey) {
		t = u.lastKey.Add(time.Millisecond)
	}
	u.lastKey = t
	return KeyFor(u.opts.Prefix, t)
}

// KeyFor is the object key of a copy taken at t under prefix:
// <prefix>/drbot-<UTC yyyymmddThhmmss.000Z>.db.
func KeyFor(prefix string, t time.Time) string {
	name := "drbot-" + t.UTC().Format("20060102T150405.000") + "Z.db"
	if prefix = strings.Trim(prefix, "/"); prefix == "" {
		return name
	}
	return prefix + "/" + name
}

var keyName = regexp.MustCompile(`^drbot-\d{8}T\d{6}\.\d{3}Z\.db$`)

// IsBackupKey reports whether key names a copy made by an Uploader.
func IsBackupKey(key string) bool { return keyName.MatchString(path.Base(key)) }

// List returns the keys of the copies directly under prefix, oldest first.
func List(ctx context.Context, api S3API, bucket, prefix string) ([]string, error) {
	dir := strings.Trim(prefix, "/")
	if dir != "" {
		dir += "/"
	}
	var keys []string
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(dir + "drbot-")}
	for {
		out, err := api.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("listing s3://%s/%s: %w", bucket, dir, err)
		}
		for _, o := range out.Contents {
			k := aws.ToString(o.Key)
			if keyName.MatchString(strings.TrimPrefix(k, dir)) {
				keys = append(keys, k)
			}
		}
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			break
		}
		in.ContinuationToken = out.NextContinuationToken
	}
	slices.Sort(keys)
	return keys, nil
}

func (u *Uploader) prune(ctx context.Context) error {
	keys, err := List(ctx, u.s3, u.opts.Bucket, u.opts.Prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, k := range keys[:max(0, len(keys)-u.opts.Keep)] {
		if _, err := u.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(u.opts.Bucket), Key: aws.String(k)}); err != nil {
			errs = append(errs, fmt.Errorf("deleting s3://%s/%s: %w", u.opts.Bucket, k, err))
		}
	}
	return errors.Join(errs...)
}

// fileInfo is what a copy holds, read from the copy itself.
type fileInfo struct {
	mark Mark
	sum  []byte // sha256 of the file
}

func (i fileInfo) metadata() map[string]string {
	return map[string]string{
		metaSchema:    strconv.FormatUint(i.mark.SchemaVersion, 10),
		metaOutboxSeq: strconv.FormatUint(i.mark.OutboxSeq, 10),
		metaNewest:    i.mark.Newest.UTC().Format(time.RFC3339Nano),
		metaSHA256:    hex.EncodeToString(i.sum),
	}
}

// inspect validates a state file and reads its mark and hash.
func inspect(file string) (fileInfo, error) {
	if err := checkPages(file); err != nil {
		return fileInfo{}, err
	}
	m, err := ReadMark(file)
	if err != nil {
		return fileInfo{}, err
	}
	f, err := os.Open(file)
	if err != nil {
		return fileInfo{}, fmt.Errorf("hashing %q: %w", file, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fileInfo{}, fmt.Errorf("hashing %q: %w", file, err)
	}
	return fileInfo{mark: m, sum: h.Sum(nil)}, nil
}
