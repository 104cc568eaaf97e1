package download

// The final name: what counts as done under it, whose file it is, the
// directories made durable on the way to it, and which local errors stop
// the run rather than fail one line.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/zeebo/xxh3"
	"golang.org/x/sys/unix"

	"github.com/ck-tools/ck/lib/durable"
	"github.com/ck-tools/ck/lib/outname"
)

// ownerXattr is the extended attribute of a final file that names the URL
// it is the file of (outname.Owner). It is set on the .part before its fsync
// and rename, so a final file never lacks it where the file system has
// xattrs; where it has none, a final file counts as done for any URL.
const ownerXattr = "user.ck.url"

// DirSyncer fsyncs directories for many downloads at once;
// *durable.DirSyncer (group commit) is the one ckfetch uses.
type DirSyncer interface {
	Sync(dir string) error
	Close()
}

// maxKnownDirs bounds the directories a Fetcher remembers as made and
// synced: with one directory per host, a cache that never forgets would
// grow with the input. A directory forgotten is made and synced again.
var maxKnownDirs = 4096

// knownDirs is a bounded set of directories known to exist and to be
// durable in their parents in this run, each with whether it is fresh:
// made by this run, with no named .part made in it since, so that no
// .part of this run or an earlier one can be in it (see openExisting).
type knownDirs struct {
	mu sync.Mutex
	m  map[string]dirState
}

// dirState is what knownDirs knows of a directory; the zero value: nothing.
type dirState uint8

const (
	dirMade  dirState = 1 + iota // made by this run, not yet known synced: fresh
	dirKnown                     // made and synced
	dirFresh                     // and made by this run
	dirNamed                     // and a named .part may be in it: never fresh again
)

// has reports whether dir is known to exist and be durable.
func (k *knownDirs) has(dir string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.m[dir]
	return st != 0 && st != dirMade
}

// fresh reports whether dir is fresh, synced or not.
func (k *knownDirs) fresh(dir string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.m[dir]
	return st == dirFresh || st == dirMade
}

// made records that this run's mkdir made dir, before it is synced: a line
// that finds it there meanwhile (EEXIST, or it starts once another line is
// done in it) knows it fresh at once, not once the maker's sync is over.
func (k *knownDirs) made(dir string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.room(dir)
	if k.m[dir] == 0 {
		k.m[dir] = dirMade
	}
}

// room makes the map, and room in it for dir: an arbitrary other
// directory is forgotten when it is full.
func (k *knownDirs) room(dir string) {
	if k.m == nil {
		k.m = map[string]dirState{}
	}
	if _, ok := k.m[dir]; ok {
		return
	}
	for old := range k.m {
		if len(k.m) < maxKnownDirs {
			break
		}
		delete(k.m, old)
	}
}

// add remembers dir, made by this run if fresh, forgetting an arbitrary
// other one when full. Two lines may make one directory at once: the one
// whose mkdir got EEXIST does not take the other's freshness away, and
// nothing makes fresh a directory that has had a named .part.
func (k *knownDirs) add(dir string, fresh bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.room(dir)
	switch cur := k.m[dir]; {
	case cur == dirNamed:
	case fresh || cur == dirFresh || cur == dirMade:
		k.m[dir] = dirFresh
	default:
		k.m[dir] = dirKnown
	}
}

// named records that a named .part may be made in dir, which the caller
// has made (mkdir): it is not fresh, and does not become fresh again.
func (k *knownDirs) named(dir string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m[dir] != 0 {
		k.m[dir] = dirNamed
	}
}

func (k *knownDirs) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}

// madeNames is the set of final names a Fetcher made in fresh directories
// (see looksFirst), as a Bloom filter of a fixed size: mayHave is true for
// every name added, and for a few others (then the name is looked at, as it
// would be anyway). 2^23 bits (1 MiB, made at the first add) in blocks of a
// cache line, 4 bits per name in its block (one cache miss per call, not
// four): about 2% of other names say "maybe" after a million adds, most
// after ten million; past that the final names are looked at, as in a
// directory that is not fresh, and memory stays the same. Its pages are
// written once when it is made: a mayHave on a page never written maps it
// to the kernel's zero page, and the add that then writes it copies the
// page and flushes the TLB of every CPU running the process (3–5% of
// ckfetch's CPU on small files, TestMadeNamesFaultedIn).
type madeNames struct {
	bits atomic.Pointer[[madeBits / 64]atomic.Uint64]
}

const (
	madeBits   = 1 << 23
	madeBlock  = 512 // bits: a cache line
	madeProbes = 4
)

// madeBit returns the word and bit of name's k-th probe.
func madeBit(hi, lo uint64, k int) (word int, bit uint64) {
	block := lo % (madeBits / madeBlock)
	i := hi >> (9 * k) & (madeBlock - 1)
	return int(block*(madeBlock/64) + i/64), 1 << (i % 64)
}

func (m *madeNames) add(name string) {
	bits := m.bits.Load()
	if bits == nil {
		b := new([madeBits / 64]atomic.Uint64)
		for i := 0; i < len(b); i += os.Getpagesize() / 8 {
			b[i].Store(0) // each page faulted in for writing now (see madeNames)
		}
		m.bits.CompareAndSwap(nil, b)
		bits = m.bits.Load()
	}
	h := xxh3.HashString128(name)
	for k := range madeProbes {
		w, b := madeBit(h.Hi, h.Lo, k)
		bits[w].Or(b)
	}
}

func (m *madeNames) mayHave(name string) bool {
	bits := m.bits.Load()
	if bits == nil {
		return false
	}
	h := xxh3.HashString128(name)
	for k := range madeProbes {
		if w, b := madeBit(h.Hi, h.Lo, k); bits[w].Load()&b == 0 {
			return false
		}
	}
	return true
}

// final looks at what is under the final name path. found reports a regular
// file that counts as rawURL's: made for it, or with no owner recorded (by
// an older version, or by the user). An error says why the name cannot be
// used: a directory there, a parent that is not a directory, the file of
// another URL. With a Store, the Store is asked instead.
func (f *Fetcher) final(ctx context.Context, rawURL, path string) (found bool, err error) {
	if f.Store != nil {
		return f.storeFinal(ctx, rawURL, path)
	}
	var st unix.Stat_t
	switch err := unix.Stat(path, &st); {
	case err == unix.ENOENT:
		return false, nil
	case err == unix.ENOTDIR:
		return false, notDir(path)
	case err != nil:
		return false, f.local(&os.PathError{Op: "stat", Path: path, Err: err})
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return false, fmt.Errorf("%s is a directory, not a file (%s)", path, clashHint)
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return false, fmt.Errorf("%s is not a regular file", path)
	}
	owner, err := readOwner(path)
	if err != nil {
		return false, f.local(err)
	}
	if owner != "" && !outname.SameOwner(owner, rawURL) {
		return false, fmt.Errorf("%s is already the file of %s", path, outname.OwnerURL(owner))
	}
	return true, nil
}

// clashHint says what to do about a name that is a file where a directory
// is needed, or the other way round: with the tree layout, /a and /a/b.
const clashHint = "a file/directory clash: give this line its own PATH (URL<TAB>PATH), or use --layout flat"

// notDir says which parent of path is not a directory.
func notDir(path string) error {
	for d := filepath.Dir(path); d != filepath.Dir(d); d = filepath.Dir(d) {
		var st unix.Stat_t
		err := unix.Stat(d, &st)
		if err == unix.ENOTDIR {
			continue
		}
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			return fmt.Errorf("cannot use %s: %s is a regular file, not a directory (%s)", path, d, clashHint)
		}
		if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("cannot use %s: %s is not a directory", path, d)
		}
		break
	}
	return fmt.Errorf("%w (%s)", &os.PathError{Op: "stat", Path: path, Err: unix.ENOTDIR}, clashHint)
}

// readOwner returns the owner recorded on the file path, "" if none (or
// none can be read: no xattrs here, or no permission).
func readOwner(path string) (string, error) {
	buf := make([]byte, outname.MaxOwnerURL+64)
	n, err := unix.Getxattr(path, ownerXattr, buf)
	if err == unix.ERANGE { // not one of ours: read it whole to compare
		if n, err = unix.Getxattr(path, ownerXattr, nil); err == nil {
			buf = make([]byte, n)
			n, err = unix.Getxattr(path, ownerXattr, buf)
		}
	}
	switch err {
	case nil:
		return string(buf[:n]), nil
	case unix.ENODATA, unix.ENOTSUP, unix.EACCES, unix.EPERM:
		return "", nil
	}
	return "", &os.PathError{Op: "getxattr", Path: path, Err: err}
}

// setOwner records rawURL as the owner of the part file, before it is
// fsynced and renamed. A file system that refuses it only turns the check
// of final() off for this file.
func (f *Fetcher) setOwner(part *partFile, rawURL string) error {
	err := fsetxattr(part.fd, ownerXattr, []byte(outname.Owner(rawURL)), 0)
	if err == nil || xattrRefused(err) {
		return nil
	}
	return f.local(&os.PathError{Op: "setxattr", Path: part.name, Err: err})
}

// found settles a final file that was already there: it is echoed as done,
// so its name must be durable first. The run that renamed it may have been
// killed before it fsynced the directory, or the directories above it.
func (f *Fetcher) found(path string) error {
	dir := filepath.Dir(path)
	if err := f.mkdir(dir); err != nil {
		return err
	}
	if err := f.Dirs.Sync(dir); err != nil {
		return fatal(err)
	}
	return nil
}

// mkdir makes dir and makes it durable: below Root, every directory from
// Root down to dir is created if missing and fsynced into its parent, once
// per run (while remembered), whether this run made it or an earlier one
// did, which may have been killed before that fsync. Without Root, only the
// directories created now are synced.
func (f *Fetcher) mkdir(dir string) error {
	if f.known.has(dir) {
		return nil
	}
	root := filepath.Clean(f.Root)
	rel, err := filepath.Rel(root, dir)
	switch {
	case f.Root == "" || err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)):
		if err := durable.MkdirAll(dir, f.Dirs.Sync); err != nil {
			return f.local(err)
		}
	case rel == ".":
		return nil // the output directory: made durable before the run
	default:
		parent := filepath.Dir(dir)
		if err := f.mkdir(parent); err != nil {
			return err
		}
		err := unix.Mkdir(dir, 0o777)
		if err != nil && err != unix.EEXIST {
			return f.local(&os.PathError{Op: "mkdir", Path: dir, Err: err})
		}
		if err == nil {
			f.known.made(dir)
		}
		if err := f.Dirs.Sync(parent); err != nil {
			return fatal(err)
		}
		f.known.add(dir, err == nil)
		return nil
	}
	f.known.add(dir, false)
	return nil
}

// local classifies an error of a file system call made for one line (see
// classifyLocal); a file where a directory is needed or the other way round,
// met while the name is made (two lines at once), says what to do.
func (f *Fetcher) local(err error) error {
	err = classifyLocal(err, f.Root)
	var fe fatalError
	if !errors.As(err, &fe) && (errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EISDIR)) {
		return fmt.Errorf("%w (%s)", err, clashHint)
	}
	return err
}

// classifyLocal tells the local errors that stop the run (fatal: the disk,
// the output directory root as a whole) from those that come from one line's
// path and fail that line only (ENOTDIR, EISDIR, ENAMETOOLONG, EEXIST,
// ELOOP...). EACCES, EPERM and ENOENT are fatal on root itself or an entry
// directly in it (root cannot be written, or is gone), and the line's
// failure deeper down. An error it does not know stops the run: going on
// could only hide it.
func classifyLocal(err error, root string) error {
	var fe fatalError
	if err == nil || errors.As(err, &fe) || errors.Is(err, context.Canceled) {
		return err
	}
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return fatal(err)
	}
	switch errno {
	case unix.ENOTDIR, unix.EISDIR, unix.ENAMETOOLONG, unix.EEXIST, unix.ELOOP, unix.EINVAL,
		unix.EMLINK, unix.EFBIG, unix.ENOTEMPTY, unix.EXDEV, unix.ETXTBSY:
		return err
	case unix.EACCES, unix.EPERM, unix.ENOENT:
		if deepInside(errPath(err), root) {
			return err
		}
	case unix.EMFILE, unix.ENFILE:
		return fatal(fmt.Errorf("%w (%s)", err, descriptorsHint))
	}
	return fatal(err) // ENOSPC, EDQUOT, EIO, EROFS, EMFILE, ENFILE, ENOMEM and the unknown
}

// errPath is the path an error is about, "" if it names none.
func errPath(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Path
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Old
	}
	return ""
}

// deepInside reports whether p lies below a directory of root, not in root
// itself.
func deepInside(p, root string) bool {
	if p == "" || root == "" {
		return false
	}
	rel, err := filepath.Rel(filepath.Clean(root), p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return false
	}
	return strings.ContainsRune(rel, filepath.Separator)
}
