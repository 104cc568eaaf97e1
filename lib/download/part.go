package download

// The .part file: the resume point of a download and its validator.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ck-tools/ck/lib/outname"
)

// saveAfter is the size from which a .part file is worth resuming: its
// record (see partRecord) is written before the write that takes the file to
// saveAfter bytes, so after kill -9 any .part of that size or more resumes.
// Below it nothing is written besides the bytes, unless an attempt ends
// without finishing: a small file killed with SIGKILL restarts from zero,
// which costs less than a record per download would.
const saveAfter = 64 << 10

// syncEvery is how often the bytes of a resumable .part file are fsynced:
// at every multiple of 8 MiB, after which the record names that length as
// durable. After a power loss at most the bytes since the last multiple are
// fetched again; the cost is one fdatasync per 8 MiB of a large download.
const syncEvery = 8 << 20

// xattrName is the extended attribute of a .part file that holds its record.
// Where the file system refuses extended attributes, the record goes to the
// sidecar file PATH.part.etag instead.
const xattrName = "user.ck.part"

// bootIDPath is where the kernel gives the id of the current boot; a test
// points it elsewhere to simulate a reboot.
var bootIDPath = "/proc/sys/kernel/random/boot_id"

// The extended attribute calls, replaced by a test that simulates a file
// system without them.
var (
	fsetxattr    = unix.Fsetxattr
	fgetxattr    = unix.Fgetxattr
	fremovexattr = unix.Fremovexattr
)

// bootID returns the id of the current boot, "" if it cannot be read (then
// every open is taken as after a reboot). It is read once per path: a boot id
// does not change while a process runs.
func bootID() string {
	bootCache.Lock()
	defer bootCache.Unlock()
	if bootCache.path != bootIDPath {
		b, err := os.ReadFile(bootIDPath)
		if err != nil {
			return "" // not cached: it may be readable later
		}
		bootCache.path, bootCache.id = bootIDPath, strings.TrimSpace(string(b))
	}
	return bootCache.id
}

var bootCache struct {
	sync.Mutex
	path, id string
}

// partRecord is what is kept with a .part file: the validator of its bytes,
// how many of them were fsynced (durable), and the boot in which the record
// was written. After a reboot only the durable bytes are trusted.
type partRecord struct {
	validator string
	durable   int64
	boot      string
}

const recordMagic = "ck.part 1\n"

// encode writes the record as four lines; the final newline tells a whole
// record from a torn one.
func (r partRecord) encode() []byte {
	return []byte(recordMagic + r.boot + "\n" + strconv.FormatInt(r.durable, 10) + "\n" + r.validator + "\n")
}

// decodeRecord reads what encode wrote; ok is false for anything else (a
// torn sidecar, the bare validator of an older version), which leaves the
// .part without a validator: it is fetched again from zero.
func decodeRecord(b []byte) (r partRecord, ok bool) {
	rest, found := strings.CutPrefix(string(b), recordMagic)
	if !found || !strings.HasSuffix(rest, "\n") {
		return r, false
	}
	f := strings.Split(strings.TrimSuffix(rest, "\n"), "\n")
	if len(f) != 3 || f[2] == "" {
		return r, false
	}
	d, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || d < 0 {
		return r, false
	}
	return partRecord{validator: f[2], durable: d, boot: f[0]}, true
}

// xattrRefused says whether a failed extended-attribute call means this file
// system (or this file) cannot hold the record there, so the sidecar is used.
func xattrRefused(err error) bool {
	switch err {
	case unix.ENOTSUP, unix.E2BIG, unix.ERANGE, unix.ENOSPC, unix.EDQUOT, unix.EPERM, unix.EACCES:
		return true
	}
	return false
}

// partFile is an open, locked .part file and the validator of its bytes.
type partFile struct {
	name      string // PATH.part
	meta      string // PATH.part.etag: the record, where xattrs are refused
	fd        int    // a raw descriptor: os.File's poller bookkeeping costs system calls
	size      int64
	validator string
	durable   int64  // bytes fsynced, as the record says
	boot      string // the boot id in the record
	saved     bool   // a record of validator is written (xattr or sidecar)
	sidecar   bool   // the record lives in meta: the file system refused the xattr
	finished  bool
	digest    *digest // of the bytes written, nil: none wanted (see sum.go)
	// anon: the file has no name yet, an O_TMPFILE in the final name's
	// directory (see openAnon); name is the one it takes if it must be kept.
	anon bool
}

// openAnon opens an unnamed .part for path: an O_TMPFILE in its
// directory dir, for a fresh download too small to be worth resuming after a
// kill (under saveAfter: a named one would have no record either). It costs
// no lock and no look at the final name: nobody else can see it, and it
// gets its name by linkat, which fails when the name is taken (see
// finishAnon), where a rename would replace it. An O_TMPFILE the file
// system does not support is unix.EOPNOTSUPP (or EISDIR, EINVAL on old
// kernels): the caller makes a named one instead.
func openAnon(dir, path string) (*partFile, error) {
	fd, err := openTmpfile(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o666)
	if err != nil {
		return nil, err
	}
	return &partFile{name: path + outname.PartSuffix, meta: path + outname.PartSuffix + ".etag", fd: fd, anon: true}, nil
}

// openTmpfile is unix.Open, replaced by a test that simulates a file
// system without O_TMPFILE.
var openTmpfile = unix.Open

// anonUnsupported reports whether an error of openAnon says the file
// system has no O_TMPFILE.
func anonUnsupported(err error) bool {
	return err == unix.EOPNOTSUPP || err == unix.EISDIR || err == unix.EINVAL
}

// procFDs says whether /proc/self/fd exists, through which an O_TMPFILE is
// linked without privileges (AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH).
var procFDs = sync.OnceValue(func() bool {
	return unix.Access("/proc/self/fd", unix.F_OK) == nil
})

// link gives the unnamed file of p the name to, failing with unix.EEXIST
// when to exists: it never replaces a file. It links the descriptor itself
// (AT_EMPTY_PATH, half the cost of a walk through /proc/self/fd), which
// Linux allows without privileges since 6.10 for a file the process opened;
// an older kernel says ENOENT without CAP_DAC_READ_SEARCH, and from then on
// the link goes through /proc/self/fd.
func (p *partFile) link(to string) error {
	if !emptyPathRefused.Load() {
		err := linkEmptyPath(p.fd, to)
		if err != unix.ENOENT {
			return err
		}
		// Refused, or to's directory is gone: the other way tells which.
		err = linkProc(p.fd, to)
		if err != unix.ENOENT {
			emptyPathRefused.Store(true)
		}
		return err
	}
	return linkProc(p.fd, to)
}

// emptyPathRefused is set once linkat refused AT_EMPTY_PATH.
var emptyPathRefused atomic.Bool

// linkEmptyPath links the file of descriptor fd as to (AT_EMPTY_PATH); a
// test replaces it to simulate a kernel that refuses it.
var linkEmptyPath = func(fd int, to string) error {
	return unix.Linkat(fd, "", unix.AT_FDCWD, to, unix.AT_EMPTY_PATH)
}

// linkProc links the file of descriptor fd as to through /proc/self/fd.
func linkProc(fd int, to string) error {
	return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, to, unix.AT_SYMLINK_FOLLOW)
}

// keeps reports whether close keeps the file for a resume: it is not
// finished, and holds bytes with a validator to resume them by.
func (p *partFile) keeps() bool { return !p.finished && p.size > 0 && p.validator != "" }

// keep names an unnamed .part that holds bytes worth resuming (a download
// that stopped before its end): locked first, then linked to its .part
// name, so nobody sees it unlocked. It stays unnamed (and is dropped at its
// close) if that name is taken, by another download's .part.
func (p *partFile) keep() error {
	if err := unix.Flock(p.fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fatal(fmt.Errorf("lock %s: %w", p.name, err))
	}
	if err := p.link(p.name); err != nil {
		if err == unix.EEXIST {
			return nil
		}
		return fatal(fmt.Errorf("link %s: %w", p.name, err))
	}
	// A download of the same path (another line for this URL) may have
	// made the final file meanwhile: then nothing is left to resume.
	if unix.Access(strings.TrimSuffix(p.name, outname.PartSuffix), unix.F_OK) == nil {
		unix.Unlink(p.name)
		return nil
	}
	p.anon = false
	return nil
}

// openPart opens the part file of path and locks it, so two downloads of one
// file (two lines of a run, or two ckfetch processes sharing an output
// directory) never write it at once. With create it is created if missing;
// without, a missing one is no error: the result is nil (nothing to resume),
// and nothing is created. Waiting for a lock that another download holds
// stops when ctx is done (context.Canceled), leaving the file as it is.
// contended reports that another download held the file first (its lock was
// waited for, or the file it held went away meanwhile): that one may have
// finished the final file. Errors opening are plain *os.PathError, for the
// caller to classify.
func openPart(ctx context.Context, path string, create bool) (p *partFile, contended bool, err error) {
	p = &partFile{name: path + outname.PartSuffix, meta: path + outname.PartSuffix + ".etag"}
	flags := unix.O_RDWR | unix.O_CLOEXEC
	if create {
		flags |= unix.O_CREAT
	}
	for {
		fd, err := unix.Open(p.name, flags, 0o666)
		if err == unix.ENOENT && !create {
			return nil, contended, nil
		}
		if err != nil {
			return nil, contended, &os.PathError{Op: "open", Path: p.name, Err: err}
		}
		if err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err == unix.EWOULDBLOCK {
			contended = true
			err = waitLock(ctx, fd)
		}
		if err == context.Canceled {
			unix.Close(fd)
			return nil, contended, err
		}
		if err != nil {
			unix.Close(fd)
			return nil, contended, fatal(fmt.Errorf("lock %s: %w", p.name, err))
		}
		var st, now unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, contended, fatal(fmt.Errorf("stat %s: %w", p.name, err))
		}
		// The holder before us may have finished (renamed) or removed the
		// file between our open and our lock: then this one is no longer at
		// that name, and must not be touched.
		if err := unix.Stat(p.name, &now); err != nil || now.Ino != st.Ino || now.Dev != st.Dev {
			unix.Close(fd)
			contended = true
			continue
		}
		p.fd, p.size = fd, st.Size
		break
	}
	if err := p.load(); err != nil {
		p.close()
		return nil, contended, err
	}
	return p, contended, nil
}

// waitLock takes the lock of fd that another download holds: flock has no
// timeout, so it polls with LOCK_NB and a short growing sleep (up to 100 ms,
// the delay by which a waiter notices the holder is done) that ends when
// ctx is done.
func waitLock(ctx context.Context, fd int) error {
	t := time.NewTimer(time.Millisecond)
	defer t.Stop()
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		select {
		case <-ctx.Done():
			return context.Canceled
		case <-t.C:
		}
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			return err
		}
		t.Reset(delay)
	}
}

// load reads the record of a non-empty part file and puts the write offset
// at its end. After a reboot (another boot id, or none readable) the bytes
// past the recorded durable length may never have reached the disk: the
// file is cut there, or emptied when nothing was recorded as durable.
func (p *partFile) load() error {
	if p.size == 0 {
		return nil
	}
	rec, ok, err := p.readRecord()
	if err != nil {
		return err
	}
	if ok {
		p.validator, p.durable, p.boot, p.saved = rec.validator, rec.durable, rec.boot, true
		if now := bootID(); now == "" || now != rec.boot {
			keep := min(rec.durable, p.size)
			if keep == 0 {
				return p.reset("")
			}
			if err := unix.Ftruncate(p.fd, keep); err != nil {
				return fatal(fmt.Errorf("truncate %s: %w", p.name, err))
			}
			p.size = keep
			if now != "" { // the bytes kept are durable in this boot too
				p.boot = now
				if err := p.save(keep); err != nil {
					return err
				}
			}
		}
	}
	if _, err := unix.Seek(p.fd, p.size, io.SeekStart); err != nil {
		return fatal(fmt.Errorf("seek %s: %w", p.name, err))
	}
	return nil
}

// readRecord reads the record from the xattr, else from the sidecar.
func (p *partFile) readRecord() (partRecord, bool, error) {
	buf := make([]byte, 1024)
	n, err := fgetxattr(p.fd, xattrName, buf)
	if err == unix.ERANGE {
		if n, err = fgetxattr(p.fd, xattrName, nil); err == nil {
			buf = make([]byte, n)
			n, err = fgetxattr(p.fd, xattrName, buf)
		}
	}
	switch {
	case err == nil:
		r, ok := decodeRecord(buf[:n])
		return r, ok, nil
	case err == unix.ENODATA:
	case xattrRefused(err):
		p.sidecar = true
	default:
		return partRecord{}, false, fatal(fmt.Errorf("read the record of %s: %w", p.name, err))
	}
	b, err := os.ReadFile(p.meta)
	if err != nil {
		return partRecord{}, false, nil // no record: the bytes cannot be resumed
	}
	r, ok := decodeRecord(b)
	if ok {
		p.sidecar = true
	}
	return r, ok, nil
}

// reset empties the part file for the bytes of a new response, whose
// validator is given. The record goes first: the old validator must never
// describe new bytes, even when the process dies half way.
func (p *partFile) reset(validator string) error {
	if p.saved {
		if err := p.unsave(); err != nil {
			return err
		}
	}
	if p.size > 0 {
		if err := unix.Ftruncate(p.fd, 0); err != nil {
			return fatal(fmt.Errorf("truncate %s: %w", p.name, err))
		}
		if _, err := unix.Seek(p.fd, 0, io.SeekStart); err != nil {
			return fatal(fmt.Errorf("seek %s: %w", p.name, err))
		}
	}
	p.size, p.durable, p.validator = 0, 0, validator
	if p.digest != nil {
		p.digest.reset()
	}
	return nil
}

// save writes the record of the part file with durable as its durable
// length: one fsetxattr, or the sidecar where the file system has no xattrs.
func (p *partFile) save(durable int64) error {
	if p.validator == "" {
		return nil
	}
	if p.anon { // a record needs a name (no caller gets here: a guard)
		if err := p.keep(); err != nil || p.anon {
			return err
		}
	}
	if p.boot == "" {
		p.boot = bootID()
	}
	rec := partRecord{validator: p.validator, durable: durable, boot: p.boot}.encode()
	if !p.sidecar {
		err := fsetxattr(p.fd, xattrName, rec, 0)
		if err == nil {
			p.saved, p.durable = true, durable
			return nil
		}
		if !xattrRefused(err) {
			return fatal(fmt.Errorf("write the record of %s: %w", p.name, err))
		}
		p.sidecar = true
	}
	if err := os.WriteFile(p.meta, rec, 0o666); err != nil {
		return fatal(fmt.Errorf("write %s: %w", p.meta, err))
	}
	p.saved, p.durable = true, durable
	return nil
}

// unsave removes the record.
func (p *partFile) unsave() error {
	var err error
	if p.sidecar {
		if err = os.Remove(p.meta); errors.Is(err, os.ErrNotExist) {
			err = nil
		}
	} else if err = fremovexattr(p.fd, xattrName); err == unix.ENODATA {
		err = nil
	}
	if err != nil {
		return fatal(fmt.Errorf("remove the record of %s: %w", p.name, err))
	}
	p.saved = false
	return nil
}

// sync makes the bytes of the part file durable and records their length.
func (p *partFile) sync() error {
	if err := unix.Fdatasync(p.fd); err != nil {
		return fatal(fmt.Errorf("sync %s: %w", p.name, err))
	}
	return p.save(p.size)
}

// writeAll writes b to fd, as os.File.Write would, without its bookkeeping.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

var bufPool = make(chan []byte, 64)

// getBuf returns a 256 KiB buffer for copying, from the pool if it has one.
func getBuf() []byte {
	select {
	case buf := <-bufPool:
		return buf
	default:
		return make([]byte, 256<<10)
	}
}

func putBuf(buf []byte) {
	select {
	case bufPool <- buf:
	default:
	}
}

// copyFrom appends r to the part file, and to its digest if it has one
// (after the bytes an earlier run left, hashed before the request). Errors
// writing are fatal; errors reading are the network's.
func (p *partFile) copyFrom(r io.Reader, progress func(int64)) (int64, error) {
	if err := p.catchUp(context.Background()); err != nil { // done already: a guard
		return 0, err
	}
	buf := getBuf()
	defer putBuf(buf)
	read := r.Read
	if p.anon {
		// A small body (under saveAfter, its size known) goes to its file in
		// one write, however many pieces it came in: no progress shows
		// between them, and none is needed.
		read = func(b []byte) (n int, err error) {
			for n < len(b) && err == nil {
				var m int
				m, err = r.Read(b[n:])
				n += m
			}
			return n, err
		}
	}
	var total int64
	for {
		n, rerr := read(buf)
		if n > 0 {
			if err := p.write(buf[:n]); err != nil {
				return total, err
			}
			if p.digest != nil {
				p.digest.write(buf[:n])
			}
			total += int64(n)
			if progress != nil {
				progress(int64(n))
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// write appends b. The record is written before the bytes that make the
// file worth resuming (saveAfter), and from then on the bytes are fsynced at
// every multiple of syncEvery, each time with the record updated.
func (p *partFile) write(b []byte) error {
	for len(b) > 0 {
		if !p.saved && p.validator != "" && p.size+int64(len(b)) >= saveAfter {
			if err := p.save(p.durable); err != nil {
				return err
			}
		}
		chunk := b
		next := (p.size/syncEvery + 1) * syncEvery
		if p.saved && p.size+int64(len(chunk)) > next {
			chunk = chunk[:next-p.size]
		}
		if err := writeAll(p.fd, chunk); err != nil {
			return fatal(fmt.Errorf("write %s: %w", p.name, err))
		}
		p.size += int64(len(chunk))
		b = b[len(chunk):]
		if p.saved && p.size == next {
			if err := p.sync(); err != nil {
				return err
			}
		}
	}
	return nil
}

// done is called after the rename: the record goes, so it neither stays on
// the final file nor, for a sidecar, beside it.
func (p *partFile) done() {
	p.finished = true
	if p.saved {
		p.unsave()
	}
}

// close releases the lock. An unfinished part file is fsynced and keeps its
// record for the next run, which resumes it even after a power loss; an
// empty one is removed, since it holds nothing to resume.
func (p *partFile) close() error {
	defer unix.Close(p.fd)
	if p.finished {
		return nil
	}
	if p.anon && p.keeps() {
		p.keep() // if it cannot be named, its few bytes are fetched again
	}
	if p.anon {
		return nil // nothing to resume, and no name: the kernel frees it
	}
	if p.size == 0 {
		os.Remove(p.name) // and its xattr with it
		if p.saved && p.sidecar {
			os.Remove(p.meta)
		}
		return nil
	}
	if p.validator == "" || (p.saved && p.durable == p.size) {
		return nil
	}
	return p.sync()
}
