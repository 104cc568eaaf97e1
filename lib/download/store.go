package download

// The hook for a Store: final files kept elsewhere than on the disk (an
// object store, ckfetch -d s3://BUCKET/PREFIX). The download itself is the
// same: a .part under Root (the spool), resumed, validated and fsynced as on
// disk; only the last step differs. Where the disk path renames the .part
// into place and fsyncs its directory, a Store's Put copies the whole,
// fsynced .part and the .part is removed; where the disk path looks at the
// final file, the Store is asked (Final).

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ck-tools/ck/lib/outname"
)

// Store keeps the final files of a Fetcher whose Store is set. name is the
// final path relative to Fetcher.Root, with slashes. Its errors are plain
// (they fail the line), or wrapped by Fatal (they stop the run) or
// Retryable (Put is tried again after the Fetcher's backoff).
type Store interface {
	// Final reports whether name is stored as rawURL's file (or as
	// nobody's); an error when it is another URL's or cannot be told.
	Final(ctx context.Context, name, rawURL string) (found bool, err error)
	// Put stores the whole file f of size bytes as name, owned by rawURL.
	// It returns only once name is durable in the store.
	Put(ctx context.Context, name string, f *os.File, size int64, rawURL string) error
	// Where names the stored name for messages and reports (s3://...).
	Where(name string) string
}

// Fatal marks an error of a Store as one that stops the run (nothing can
// be stored: credentials, bucket).
func Fatal(err error) error { return fatal(err) }

// Retryable marks an error of a Store's Put as one worth trying again.
func Retryable(err error) error { return retryable{err: err} }

// storeName is the name of path for the Store: relative to Root.
func (f *Fetcher) storeName(path string) string {
	rel, err := filepath.Rel(filepath.Clean(f.Root), path)
	if err != nil {
		rel = path
	}
	return filepath.ToSlash(rel)
}

// put stores the whole, fsynced part as path's name, retrying what the
// Store calls retryable with the Fetcher's backoff (storeRetry: a retried
// Put of a multipart upload resumes it), and removes the part once stored.
// On failure the part stays, for a later try or run.
func (f *Fetcher) put(ctx context.Context, part *partFile, rawURL, path string) error {
	r, err := os.Open(part.name)
	if err != nil {
		return f.local(err)
	}
	defer r.Close()
	name := f.storeName(path)
	if err := f.storeRetry(ctx, func() error { return f.Store.Put(ctx, name, r, part.size, rawURL) }); err != nil {
		return err
	}
	// Stored: the spool copy goes (its record first, then its name). A
	// removal that fails, or a kill before it, leaves a whole .part, which
	// the next Fetch of the name finds stored and removes (dropSpooled); no
	// directory fsync is needed, the object is the durable copy.
	if err := part.unsave(); err != nil {
		return err
	}
	part.finished = true
	if err := os.Remove(part.name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return f.local(fmt.Errorf("remove the spooled %w", err))
	}
	return nil
}

// storeFinal asks the Store whether path is done, retrying what it calls
// retryable, as put does.
func (f *Fetcher) storeFinal(ctx context.Context, rawURL, path string) (found bool, err error) {
	err = f.storeRetry(ctx, func() error {
		var err error
		found, err = f.Store.Final(ctx, f.storeName(path), rawURL)
		return err
	})
	return found, err
}

// storeRetry runs op until it succeeds, fails with an error that is not
// retryable, or has failed Retries times more, waiting the Fetcher's
// backoff (doubled each time, with jitter, capped) between tries.
func (f *Fetcher) storeRetry(ctx context.Context, op func() error) error {
	backoff := f.Backoff
	for failures := 0; ; failures++ {
		err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return context.Canceled
		}
		var rt retryable
		if !errors.As(err, &rt) || failures >= f.Retries {
			return err
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, f.MaxBackoff)
		select {
		case <-ctx.Done():
			return context.Canceled
		case <-time.After(wait):
		}
	}
}

// dropSpooled removes the spooled .part of path (and its sidecar record),
// if there is one that no download holds: a run killed between the Put and
// the removal left it, whole, and its object is stored. A .part another
// download has locked is left to it.
func dropSpooled(path string) {
	name := path + outname.PartSuffix
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return // none (the usual case: one failed open per line)
	}
	defer unix.Close(fd)
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
		return
	}
	var st, now unix.Stat_t
	if unix.Fstat(fd, &st) != nil || unix.Stat(name, &now) != nil || now.Ino != st.Ino || now.Dev != st.Dev {
		return
	}
	os.Remove(name + ".etag")
	os.Remove(name)
}
