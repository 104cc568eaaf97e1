package checkpoint

// The append side of a checkpoint file: ckmark's Appender. See doc.go for
// the format.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ck-tools/ck/lib/durable"
	"github.com/ck-tools/ck/lib/lines"
)

// Batch is a group of lines to append in one Write and one fsync, already in
// the checkpoint's format: each line as read minus its ending, then "\n".
// The zero value is an empty batch.
type Batch struct {
	buf   []byte
	lines int
}

// Add appends one line to the batch, without its "\n" or "\r\n" ending (so
// a CRLF line is recorded with LF), and reports whether it did: a line with
// a blank key is never recorded. line must not contain "\n" before its
// ending; lines.Reader's lines never do.
func (b *Batch) Add(line []byte) bool {
	line = lines.TrimEnding(line)
	if len(lines.Key(line)) == 0 {
		return false
	}
	if need := len(line) + 1; cap(b.buf)-len(b.buf) < need {
		b.Grow(max(need, cap(b.buf))) // double: append's 1.25x copies a big batch over and over
	}
	b.buf = append(append(b.buf, line...), '\n')
	b.lines++
	return true
}

// AddLines adds each line of p as Add does and returns how many it added:
// p holds lines each ending in "\n" (a last line without one is added as
// Add adds it), such as a block read from a file. Runs of lines that Add
// would copy unchanged (they start with neither a byte lines.Key trims nor
// their ending, and do not end in "\r\n") are copied in one go; only the others
// are looked at one by one, which makes AddLines much faster than one Add
// per line.
func (b *Batch) AddLines(p []byte) int {
	if cap(b.buf)-len(b.buf) < len(p) {
		b.Grow(max(len(p), cap(b.buf))) // double, as Add does
	}
	added := 0
	run, runLines := 0, 0 // the run of unchanged lines: its start, its lines
	for i := 0; i < len(p); {
		j := bytes.IndexByte(p[i:], '\n')
		if j < 0 {
			j = len(p) - i - 1 // an unterminated last line: take the slow way
		}
		if c := p[i]; c == '\n' || lines.IsBlank(c) || p[i+j] != '\n' || j > 0 && p[i+j-1] == '\r' {
			b.buf = append(b.buf, p[run:i]...)
			b.lines += runLines
			added += runLines
			if b.Add(p[i : i+j+1]) {
				added++
			}
			run, runLines = i+j+1, 0
		} else {
			runLines++
		}
		i += j + 1
	}
	b.buf = append(b.buf, p[run:]...)
	b.lines += runLines
	return added + runLines
}

// AddBatch appends all of o's lines to b; o is unchanged.
func (b *Batch) AddBatch(o *Batch) {
	b.buf = append(b.buf, o.buf...)
	b.lines += o.lines
}

// Grow makes room for n more bytes, so that adding them copies nothing:
// growing a big batch line by line would copy it over and over.
func (b *Batch) Grow(n int) {
	if n > cap(b.buf)-len(b.buf) {
		b.buf = append(make([]byte, 0, len(b.buf)+n), b.buf...)
	}
}

// Lines returns the number of lines in the batch.
func (b *Batch) Lines() int { return b.lines }

// Len returns the size of the batch in bytes.
func (b *Batch) Len() int { return len(b.buf) }

// Bytes returns the batch as written to the file: whole lines, each ending
// in "\n". It is valid until the next change to b.
func (b *Batch) Bytes() []byte { return b.buf }

// Reset empties the batch, keeping its memory for reuse.
func (b *Batch) Reset() {
	b.buf = b.buf[:0]
	b.lines = 0
}

// SyncWriter is the part of the checkpoint file a batch goes through: one
// Write, then Sync. *os.File is one.
type SyncWriter interface {
	io.Writer
	Sync() error
}

// AppendOptions configures OpenAppender.
type AppendOptions struct {
	// Warn receives a one-line message (no tool prefix) when a torn last
	// line is cut off. Nil discards it.
	Warn func(msg string)
	// Wrap, if set, wraps the file that batches are written and synced
	// through, so tests can inject write and fsync failures. Locking,
	// torn-tail repair and truncation still use the file itself.
	Wrap func(SyncWriter) SyncWriter
}

// Appender appends batches of lines to a checkpoint file so that the file
// only ever holds whole lines, even with several Appenders (in several
// processes) on the same file and crashes at any instant: each batch is
// written with one Write under an exclusive lock and then fsynced, and a
// torn last line left by a crash is cut off under that lock before the next
// batch, so no line is ever glued onto a fragment.
//
// An Appender is not safe for concurrent use; one goroutine commits.
type Appender struct {
	path string
	f    *os.File   // O_APPEND|O_WRONLY: writes, truncation, the lock
	r    *os.File   // O_RDONLY on the same file: reads the tail
	w    SyncWriter // f, or what AppendOptions.Wrap made of it
	warn func(string)
	err  error // sticky: after a failed write or fsync nothing more is appended
}

// The lock is flock(2) on the checkpoint file itself, taken through the
// Appender's own O_APPEND descriptor, rather than a sidecar lock file (as
// gofrs/flock would need):
//   - It locks exactly the inode the batches go to. A sidecar is found by
//     name: if the checkpoint is renamed or deleted while ckmark runs, the
//     sidecar still "protects" a file nobody writes any more, and the user
//     has a second file to know about and never delete.
//   - gofrs/flock opens its path on every Lock and closes it on Unlock (a
//     path lookup per batch, which could land on another inode) and by
//     default creates the file 0600 if it is missing.
//   - flock locks belong to an open file description: unlike fcntl locks,
//     closing some other descriptor of the same file in the process does not
//     drop them, and the kernel releases them when the process dies, so a
//     kill -9 never leaves a stale lock behind.
//   - Locking through the write descriptor also works where Linux emulates
//     flock with fcntl locks (NFS), which need a descriptor open for writing.
// The cost is that this file builds on Unix only, as do the tools' signal
// and directory-fsync semantics.

// maxLockTries bounds the retries of flock(2) after EINTR.
const maxLockTries = 1000

// OpenAppender opens the checkpoint at path for appending, creating it if
// it is missing. When the file is new (or still empty) its directory is
// fsynced, so that the file's name survives a crash together with the lines
// later fsynced into it. Under the lock, a torn last line (no "\n", left by a
// crash) is saved to CHECKPOINT.torn, then cut off and the cut fsynced, with
// a warning through opts.Warn.
func OpenAppender(path string, opts AppendOptions) (*Appender, error) {
	_, statErr := os.Stat(path)
	missing := errors.Is(statErr, fs.ErrNotExist)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o666)
	if err != nil {
		return nil, appendErr("open checkpoint", path, err)
	}
	r, err := os.Open(path)
	if err != nil {
		f.Close()
		return nil, appendErr("open checkpoint", path, err)
	}
	a := &Appender{path: path, f: f, r: r, w: f, warn: opts.Warn}
	if opts.Wrap != nil {
		a.w = opts.Wrap(f)
	}
	if err := a.open(missing); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func (a *Appender) open(missing bool) error {
	fi, err := a.f.Stat()
	if err != nil {
		return appendErr("stat checkpoint", a.path, err)
	}
	ri, err := a.r.Stat()
	if err != nil {
		return appendErr("stat checkpoint", a.path, err)
	}
	if !os.SameFile(fi, ri) {
		return fmt.Errorf("open checkpoint %s: the file was replaced while it was opened; run again", a.path)
	}
	if err := a.lock(); err != nil {
		return err
	}
	defer a.unlock()
	size, err := a.repairTail()
	if err != nil {
		return err
	}
	// Whoever creates the file fsyncs the directory before its first batch,
	// so a non-empty file has a durable name. An empty one may have just
	// been created by another process that has not got that far yet: sync
	// too, it costs one fsync per run at most.
	if missing || size == 0 {
		if err := durable.SyncDir(filepath.Dir(a.path)); err != nil {
			return fmt.Errorf("create checkpoint %s: %w", a.path, err)
		}
	}
	return nil
}

// Path returns the checkpoint's path as given to OpenAppender.
func (a *Appender) Path() string { return a.path }

// Append writes b's lines at the end of the checkpoint with one Write under
// the lock, then fsyncs them: when Append returns nil they are durable. An
// empty batch does nothing. After an error the Appender is broken and every
// later call returns the same error: a failed fsync leaves the state of the
// file's cached pages unknown, so nothing after it could be trusted.
func (a *Appender) Append(b *Batch) error {
	if a.err != nil {
		return a.err
	}
	if b.Len() == 0 {
		return nil
	}
	if err := a.write(b.Bytes()); err != nil {
		a.err = err
		return err
	}
	// The fsync runs after the lock is released: the lock keeps lines
	// whole, and another process's batch may be written meanwhile, to be
	// covered by its own fsync (or ours).
	if err := a.w.Sync(); err != nil {
		a.err = appendErr("fsync checkpoint", a.path, err)
		return a.err
	}
	return nil
}

// write writes p under the lock, after repairing a torn tail another
// process may have left by crashing since the last batch. A failed or short
// write is cut back off, so the file still ends with a whole line.
func (a *Appender) write(p []byte) error {
	if err := a.lock(); err != nil {
		return err
	}
	defer a.unlock()
	size, err := a.repairTail()
	if err != nil {
		return err
	}
	n, err := a.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err == nil {
		return nil
	}
	err = appendErr("write checkpoint", a.path, err)
	if terr := a.f.Truncate(size); terr != nil {
		return fmt.Errorf("%w; cutting off the partial batch failed too (%v): the next run repairs the torn line", err, terr)
	}
	return err
}

// TornSuffix names the file a torn last line is saved to before it is cut
// off: CHECKPOINT.torn, beside the checkpoint.
const TornSuffix = ".torn"

// repairTail cuts off a last line without "\n" and returns the file's size
// after that. The caller holds the lock. The fragment is first appended to
// CHECKPOINT.torn, durably: ckmark never destroys bytes, even when it was
// given the wrong file (a list instead of its checkpoint).
func (a *Appender) repairTail() (int64, error) {
	fi, err := a.f.Stat()
	if err != nil {
		return 0, appendErr("stat checkpoint", a.path, err)
	}
	size := fi.Size()
	if size == 0 || !fi.Mode().IsRegular() {
		return size, nil
	}
	var last [1]byte
	if _, err := a.r.ReadAt(last[:], size-1); err != nil {
		return 0, appendErr("read checkpoint", a.path, err)
	}
	if last[0] == '\n' {
		return size, nil
	}
	nl, err := lines.LastNewline(a.r, size)
	if err != nil {
		return 0, appendErr("read checkpoint", a.path, err)
	}
	cut := nl + 1 // 0 when the file holds no "\n" at all
	frag := make([]byte, min(size-cut, 64))
	if _, err := a.r.ReadAt(frag, cut); err != nil {
		return 0, appendErr("read checkpoint", a.path, err)
	}
	torn := a.path + TornSuffix
	if err := a.saveTorn(torn, cut, size); err != nil {
		return 0, fmt.Errorf("save torn last line of checkpoint %s to %s (nothing was cut): %w", a.path, torn, err)
	}
	if err := a.f.Truncate(cut); err != nil {
		return 0, appendErr("cut torn last line of checkpoint", a.path, err)
	}
	if err := a.f.Sync(); err != nil {
		return 0, appendErr("fsync checkpoint", a.path, err)
	}
	if a.warn != nil {
		more := ""
		if size-cut > int64(len(frag)) {
			more = "..."
		}
		a.warn(fmt.Sprintf("%s: last line had no newline (torn by a crash); cut off %d bytes, saved to %s: %q%s",
			a.path, size-cut, torn, frag, more))
	}
	return cut, nil
}

// saveTorn appends bytes [cut, size) of the checkpoint and a "\n" to the
// file torn, durably (see durable.AppendFile).
func (a *Appender) saveTorn(torn string, cut, size int64) error {
	return durable.AppendFile(torn, io.MultiReader(io.NewSectionReader(a.r, cut, size-cut), strings.NewReader("\n")))
}

// Close closes the checkpoint, releasing its lock. Appended batches are
// already durable.
func (a *Appender) Close() error {
	rerr := a.r.Close()
	if err := a.f.Close(); err != nil {
		return appendErr("close checkpoint", a.path, err)
	}
	if rerr != nil {
		return appendErr("close checkpoint", a.path, rerr)
	}
	return nil
}

func (a *Appender) lock() error {
	if err := flockFile(a.f, syscall.LOCK_EX); err != nil {
		return appendErr("lock checkpoint", a.path, err)
	}
	return nil
}

func (a *Appender) unlock() {
	// Closing the file releases the lock too; an error here cannot leave
	// the lock held past the process.
	_ = flockFile(a.f, syscall.LOCK_UN)
}

func flockFile(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for range maxLockTries {
			if ferr = syscall.Flock(int(fd), how); ferr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return ferr
}

// appendErr adds "op path: " to err, dropping an *fs.PathError's own copy
// of the operation and path so the message names the file once. errors.Is
// still sees the underlying errno (fs.ErrNotExist, fs.ErrPermission).
func appendErr(op, path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}
