package fetch

// ckfetch -d s3://BUCKET/PREFIX: the bucket is opened before the run, the
// downloads spool under --spool, and each whole file is Put as the object
// PREFIX/NAME (lib/objstore), through download.Store.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ck-tools/ck/lib/download"
	"github.com/ck-tools/ck/lib/objstore"
	"github.com/ck-tools/ck/lib/outname"
)

// isS3 reports whether -d names a bucket.
func isS3(dir string) bool { return strings.HasPrefix(dir, "s3://") }

// openStore opens the bucket of c.Dir and points c.Dir at the spool: the
// directory the .part files are made in, --spool or, by default,
// os.UserCacheDir()/ck/spool/BUCKET/PREFIX. Its errors stop the run before
// any download (exit 2) and carry no credential.
func (c *CLI) openStore(ctx context.Context) error {
	bucket, prefix, err := objstore.ParseURL(c.Dir)
	if err != nil {
		return fmt.Errorf("-d: %w", err)
	}
	spool := c.Spool
	if spool == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("no cache directory for the spool of %s (%v): give one with --spool DIR", c.Dir, err)
		}
		spool = filepath.Join(cache, "ck", "spool", bucket, filepath.FromSlash(prefix))
	}
	s, err := objstore.Open(ctx, c.Dir, objstore.Options{
		Endpoint:           c.S3Endpoint,
		PartSize:           int64(c.S3PartSize),
		MultipartThreshold: int64(c.S3Multipart),
	})
	if err != nil {
		return err
	}
	c.dest, c.Dir, c.store = c.Dir, spool, s3Store{s}
	return nil
}

// s3Store is an objstore.Store as a download.Store: its errors classed as
// download wants them.
type s3Store struct{ s *objstore.Store }

func (a s3Store) Final(ctx context.Context, name, rawURL string) (bool, error) {
	found, owner, err := a.s.Stat(ctx, name)
	switch {
	case err != nil:
		return false, classed(err)
	case found && owner != "" && owner != objstore.Owner(rawURL) && !outname.SameOwner(owner, rawURL):
		return false, fmt.Errorf("%s is already the object of %s", a.s.URL(name), outname.OwnerURL(owner))
	}
	return found, nil
}

func (a s3Store) Put(ctx context.Context, name string, f *os.File, size int64, rawURL string) error {
	return classed(a.s.Put(ctx, name, f, size, rawURL))
}

func (a s3Store) Where(name string) string { return a.s.URL(name) }

// classed wraps a fatal error to stop the run, a retryable one to be tried
// again; a final one fails its line.
func classed(err error) error {
	switch {
	case err == nil || errors.Is(err, context.Canceled):
		return err
	case objstore.IsFatal(err):
		return download.Fatal(err)
	case objstore.IsRetryable(err):
		return download.Retryable(err)
	}
	return err
}

// reportPath is the path --report gives for the file path: path itself on
// disk; with -d s3://, the object's s3:// URL (the spooled file is gone).
func (c *CLI) reportPath(path string) string {
	if c.store == nil || path == "" {
		return path
	}
	rel, err := filepath.Rel(c.Dir, path)
	if err != nil {
		return path
	}
	return strings.TrimSuffix(c.dest, "/") + "/" + filepath.ToSlash(rel)
}
