package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/drbot/drbot/state"
)

// ErrLocalNewer is returned by Restore when the local file holds work the
// backup lacks; pass force to replace it anyway.
var ErrLocalNewer = errors.New("local state is newer than the backup")

// ParseS3URL splits s3://bucket/prefix-or-key into the bucket and the rest.
func ParseS3URL(raw string) (bucket, keyOrPrefix string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("parsing %q: %w", raw, err)
	}
	if u.Scheme != "s3" || u.Host == "" {
		return "", "", fmt.Errorf("parsing %q: want s3://bucket[/prefix][/drbot-….db]", raw)
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}

// Restore downloads a copy to dst. keyOrPrefix is either the key of one copy
// (its last element named like drbot-20260102T150405.000Z.db) or a prefix,
// "" for the bucket root, under which the newest copy is taken; a key ending
// in .db with no copies under it is taken as the name of one object.
//
// The download is checked page by page and against the sha256 the uploader
// recorded, then opened read-only as a state file. An existing dst is
// compared by contents (Mark): if it is newer, Restore returns ErrLocalNewer
// unless force. A dst held by a running drbot is never replaced. A replaced
// dst is kept next to it as dst+".before-restore".
func Restore(ctx context.Context, api S3API, bucket, keyOrPrefix, dst string, force bool) (string, error) {
	key := keyOrPrefix
	if !IsBackupKey(key) {
		keys, err := List(ctx, api, bucket, keyOrPrefix)
		if err != nil {
			return "", err
		}
		switch {
		case len(keys) > 0:
			key = keys[len(keys)-1]
		case strings.HasSuffix(keyOrPrefix, ".db"):
			// A copy named by hand, e.g. one `drbot state backup` made.
		default:
			return "", fmt.Errorf("restoring state: no drbot backups under s3://%s/%s", bucket, keyOrPrefix)
		}
	}
	where := fmt.Sprintf("s3://%s/%s", bucket, key)

	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating state directory for %q: %w", dst, err)
	}
	tmp, err := download(ctx, api, bucket, key, dir)
	if err != nil {
		return "", fmt.Errorf("downloading %s: %w", where, err)
	}
	defer os.Remove(tmp)
	info, err := inspect(tmp)
	if err != nil {
		return "", fmt.Errorf("refusing %s: it is not a usable drbot state file: %w", where, err)
	}

	_, statErr := os.Stat(dst)
	existing := statErr == nil
	var local Mark
	if existing {
		local, err = ReadMark(dst)
	}
	switch {
	case statErr != nil && !errors.Is(statErr, fs.ErrNotExist):
		return "", fmt.Errorf("restoring %s: checking %q: %w", where, dst, statErr)
	case !existing:
	case errors.Is(err, state.ErrLocked):
		return "", fmt.Errorf("restoring %s to %q: %w; stop drbot before restoring", where, dst, err)
	case err != nil && !force:
		return "", fmt.Errorf("restoring %s: %q exists and cannot be read as a state file (%v); pass force to replace it", where, dst, err)
	case err == nil && local.NewerThan(info.mark) && !force:
		return "", fmt.Errorf("restoring %s to %q (local outbox seq %d, newest %s; backup outbox seq %d, newest %s): %w",
			where, dst, local.OutboxSeq, local.Newest.UTC().Format("2006-01-02T15:04:05Z"),
			info.mark.OutboxSeq, info.mark.Newest.UTC().Format("2006-01-02T15:04:05Z"), ErrLocalNewer)
	}
	if existing {
		if err := os.Rename(dst, dst+".before-restore"); err != nil {
			return "", fmt.Errorf("keeping the replaced state file: %w", err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("moving restored state into place at %q: %w", dst, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable where the filesystem allows
		_ = d.Close()
	}
	return key, nil
}

// download writes the object to a temporary file in dir and checks it
// against the sha256 the uploader recorded, if any.
func download(ctx context.Context, api S3API, bucket, key, dir string) (string, error) {
	out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return "", err
	}
	defer out.Body.Close()
	f, err := os.CreateTemp(dir, ".drbot-restore-*")
	if err != nil {
		return "", fmt.Errorf("creating temporary file: %w", err)
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), out.Body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o600)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("writing temporary file: %w", err)
	}
	if want, ok := metadata(out.Metadata, metaSHA256); ok {
		if got := h.Sum(nil); !bytes.Equal(got, mustHex(want)) {
			os.Remove(f.Name())
			return "", fmt.Errorf("content sha256 %x does not match the %s recorded at upload: the object is damaged", got, want)
		}
	}
	return f.Name(), nil
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil // never equal to a real hash
	}
	return b
}

// metadata looks a key up regardless of case: servers differ in how they
// spell x-amz-meta-* headers back.
func metadata(m map[string]string, key string) (string, bool) {
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}
