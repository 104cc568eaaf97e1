package download

// Digests of a file's bytes, computed while they stream: the checksum a line
// gives (checked before the rename), and the sha256 of --report.

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Checksum is the digest a line promises for its file, as aria2's
// checksum=ALGO=HEX: the algorithm (sha256, sha512, sha1 or md5) and the
// digest's bytes. The zero value means none.
type Checksum struct {
	Algo string // canonical name: "sha256", "sha512", "sha1", "md5"
	Sum  []byte
}

// IsZero reports whether c is no checksum.
func (c Checksum) IsZero() bool { return c.Algo == "" }

// String is c as a line writes it: ALGO=HEX, the hex in lower case.
func (c Checksum) String() string { return c.Algo + "=" + hex.EncodeToString(c.Sum) }

// algorithms are the checksums a line may give, by canonical name.
var algorithms = map[string]struct {
	new  func() hash.Hash
	size int
}{
	"sha256": {sha256.New, sha256.Size},
	"sha512": {sha512.New, sha512.Size},
	"sha1":   {sha1.New, sha1.Size},
	"md5":    {md5.New, md5.Size},
}

// ParseChecksum reads ALGO=HEX: the algorithm's name in any case, with or
// without aria2's dash (sha-256), and the digest in hex digits of any case.
// The error says what is wrong in words a user can act on.
func ParseChecksum(s string) (Checksum, error) {
	name, digits, ok := strings.Cut(s, "=")
	if !ok {
		return Checksum{}, fmt.Errorf("invalid checksum %q: want ALGO=HEX, such as sha256=<64 hex digits> (sha256, sha512, sha1 or md5)", s)
	}
	algo := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "-", "")
	a, known := algorithms[algo]
	if !known {
		return Checksum{}, fmt.Errorf("invalid checksum %q: unknown algorithm %q (sha256, sha512, sha1 or md5)", s, name)
	}
	sum, err := hex.DecodeString(strings.TrimSpace(digits))
	if err != nil || len(sum) != a.size {
		return Checksum{}, fmt.Errorf("invalid checksum %q: %s takes %d hex digits", s, algo, 2*a.size)
	}
	return Checksum{Algo: algo, Sum: sum}, nil
}

// digest computes, while a file's bytes are written, the checksum's
// algorithm and, if asked, sha256 (one hash when the checksum is sha256).
// n counts the bytes hashed: the bytes of a resumed .part are read once,
// before the first request (catchUp), so a whole file is hashed from its
// first byte, never by a second read of the finished file.
type digest struct {
	want  Checksum
	check hash.Hash // of want.Algo; nil without a checksum
	sha   hash.Hash // sha256, for Result.SHA256; nil when not asked for
	n     int64
}

// newDigest returns the digest of a download with the checksum want (may be
// zero) and, if withSHA256, sha256; nil when there is nothing to compute, so
// a download without either costs nothing.
func newDigest(want Checksum, withSHA256 bool) *digest {
	if want.IsZero() && !withSHA256 {
		return nil // nothing to compute (and nothing allocated per download)
	}
	d := &digest{want: want}
	if !want.IsZero() {
		d.check = algorithms[want.Algo].new()
		if want.Algo == "sha256" {
			d.sha = d.check
		}
	}
	if withSHA256 && d.sha == nil {
		d.sha = sha256.New()
	}
	if d.check == nil && d.sha == nil {
		return nil
	}
	return d
}

func (d *digest) write(b []byte) {
	if d.check != nil {
		d.check.Write(b)
	}
	if d.sha != nil && d.sha != d.check {
		d.sha.Write(b)
	}
	d.n += int64(len(b))
}

func (d *digest) reset() {
	if d.check != nil {
		d.check.Reset()
	}
	if d.sha != nil {
		d.sha.Reset()
	}
	d.n = 0
}

// sha256 returns the hex sha256 of the bytes hashed, "" if not computed.
func (d *digest) sha256() string {
	if d == nil || d.sha == nil {
		return ""
	}
	return hex.EncodeToString(d.sha.Sum(nil))
}

// mismatch returns the checksum of the bytes hashed when it is not the one
// wanted; ok is true when it is, or when there is no checksum to check.
func (d *digest) mismatch() (got Checksum, ok bool) {
	if d == nil || d.check == nil {
		return Checksum{}, true
	}
	got = Checksum{Algo: d.want.Algo, Sum: d.check.Sum(nil)}
	return got, bytes.Equal(got.Sum, d.want.Sum)
}

// catchUp hashes the bytes of the part file that are not hashed yet: those
// an earlier run left in a resumed .part. It reads them once, with pread,
// from where the digest stopped (0 after a reset). Fetch calls it before the
// first request, so no connection waits on the read; it stops when ctx is
// done (context.Canceled), keeping what it hashed.
func (p *partFile) catchUp(ctx context.Context) error {
	d := p.digest
	if d == nil || d.n == p.size {
		return nil
	}
	if d.n > p.size { // cut since it was hashed (reset does this itself)
		d.reset()
	}
	buf := getBuf()
	defer putBuf(buf)
	for d.n < p.size {
		if ctx.Err() != nil {
			return context.Canceled
		}
		n, err := unix.Pread(p.fd, buf[:min(int64(len(buf)), p.size-d.n)], d.n)
		if err == unix.EINTR {
			continue
		}
		if err == nil && n == 0 {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return fatal(fmt.Errorf("read %s: %w", p.name, err))
		}
		d.write(buf[:n])
	}
	return nil
}

// verify checks the digest of a finished .part against the line's checksum,
// before the rename. A mismatch drops the .part: its bytes are not the
// file the line asks for, and resuming them could only give the same.
func (p *partFile) verify() error {
	if err := p.catchUp(context.Background()); err != nil { // done already: a guard
		return err
	}
	got, ok := p.digest.mismatch()
	if ok {
		return nil
	}
	if err := p.reset(""); err != nil { // empty: close removes it
		return err
	}
	return fmt.Errorf("checksum mismatch: the download's %s is %x, not %x as the line says; it was not kept", got.Algo, got.Sum, p.digest.want.Sum)
}

// checkFinal reads the final file path that is already there and checks it
// against want: the one read that a checksum on the line costs a file
// counted as done without a request. A mismatch is that line's failure; the
// file is left as it is (it may be the user's own).
func (f *Fetcher) checkFinal(path string, d *digest) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return f.local(&os.PathError{Op: "open", Path: path, Err: err})
	}
	defer unix.Close(fd)
	buf := getBuf()
	defer putBuf(buf)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return f.local(&os.PathError{Op: "read", Path: path, Err: err})
		}
		if n == 0 {
			break
		}
		d.write(buf[:n])
	}
	if got, ok := d.mismatch(); !ok {
		return fmt.Errorf("checksum mismatch: %s is already there, but its %s is %x, not %x as the line says; it was left as it is: remove it, or run with --force to download it again",
			path, got.Algo, got.Sum, d.want.Sum)
	}
	return nil
}
