package fetch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ck-tools/ck/lib/durable"
	"github.com/ck-tools/ck/lib/lines"
)

// openAppend opens the file of flag (--failed, --report) for appending,
// creating it (and fsyncing its directory, so the new name survives a
// crash) if needed. Its errors name the flag and the file and say what to do.
func openAppend(flag, name string) (*os.File, error) {
	_, statErr := os.Stat(name)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o666)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		hint := "check the path and its permissions, or name another file"
		if errors.Is(err, fs.ErrNotExist) {
			hint = fmt.Sprintf("create the directory %s first, or name another file", filepath.Dir(name))
		}
		return nil, fmt.Errorf("%s %s: cannot open: %w (%s)", flag, name, err, hint)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		if err := durable.SyncDir(filepath.Dir(name)); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s %s: %w", flag, name, err)
		}
	}
	return f, nil
}

// sameFile reports whether stdin is the file name (by device and inode, so
// a symlink or another path to it counts).
func sameFile(stdin io.Reader, name string) bool {
	in, ok := stdin.(*os.File)
	if !ok {
		return false
	}
	a, err := in.Stat()
	if err != nil || !a.Mode().IsRegular() {
		return false
	}
	b, err := os.Stat(name)
	return err == nil && os.SameFile(a, b)
}

// repairTail cuts off a torn last record of the --failed file f (bytes
// after its last newline, left by a crash in the middle of a write) and the
// "# reason" line just before them, which belongs to the same record. The
// record's line was not settled (a failure counts only once its record is
// durable), so the next run tries it again; the cut bytes are first appended
// to f's name + ".torn" (fsynced), so nothing is destroyed even when --failed
// names the wrong file. It returns a warning, or "" when the file was whole.
func repairTail(f *os.File, name string) (string, error) {
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("stat %s: %w", name, err)
	}
	size := st.Size()
	if size == 0 {
		return "", nil
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, size-1); err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	if last[0] == '\n' {
		return "", nil
	}
	cut, err := recordStart(f, size)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	frag := make([]byte, size-cut)
	if _, err := f.ReadAt(frag, cut); err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	torn := name + ".torn"
	if err := durable.AppendFile(torn, bytes.NewReader(append(frag, '\n'))); err != nil {
		return "", fmt.Errorf("keep the torn end of %s in %s: %w", name, torn, err)
	}
	if err := f.Truncate(cut); err != nil {
		return "", fmt.Errorf("cut the torn end of %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("sync %s: %w", name, err)
	}
	return fmt.Sprintf("%s: its last record has no newline (torn by a crash); its %d bytes were moved to %s (that failure was never settled, so the run that read it tries it again): %q",
		name, len(frag), torn, shortLine(string(frag))), nil
}

// recordStart returns where the torn record at the end of f starts: after
// the last newline, or at the start of the line before it if that line is
// the record's "# reason".
func recordStart(f io.ReaderAt, size int64) (int64, error) {
	nl, err := lines.LastNewline(f, size)
	if err != nil || nl < 0 {
		return 0, err
	}
	prev, err := lines.LastNewline(f, nl)
	if err != nil {
		return 0, err
	}
	return reasonStart(f, prev+1, nl+1)
}

// reasonStart returns start if the line [start, end) is a "# " line, else
// end.
func reasonStart(f io.ReaderAt, start, end int64) (int64, error) {
	p := make([]byte, min(2, end-start))
	if _, err := f.ReadAt(p, start); err != nil {
		return 0, err
	}
	if bytes.Equal(p, []byte("# ")) {
		return start, nil
	}
	return end, nil
}
