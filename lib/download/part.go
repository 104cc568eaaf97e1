package download

// The .part file: the resume point of a download and its validator.

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ck-tools/ck/lib/outname"
)

// saveAfter is the size from which a .part file's validator is written down
// while the download runs. Below it, the validator is written only when an
// attempt ends without finishing: a small file killed with SIGKILL restarts
// from zero, which costs less than one more file per download would.
const saveAfter = 1 << 20

// partFile is an open, locked .part file and the validator of its bytes.
type partFile struct {
	name      string // PATH.part
	meta      string // PATH.part.etag: the validator, once saved
	fd        int    // a raw descriptor: os.File's poller bookkeeping costs system calls
	size      int64
	validator string
	saved     bool // the meta file holds validator
	contended bool // another download of the same file held it first
	finished  bool
}

// openPart opens (or creates) the part file of path and locks it, so two
// ckfetch processes sharing an output directory never write one file at once.
func openPart(path string) (*partFile, error) {
	p := &partFile{name: path + outname.PartSuffix, meta: path + outname.PartSuffix + ".etag"}
	for {
		fd, err := unix.Open(p.name, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o666)
		if err != nil {
			return nil, fatal(fmt.Errorf("open %s: %w", p.name, err))
		}
		waited := false
		if err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err == unix.EWOULDBLOCK {
			waited = true
			for err = unix.Flock(fd, unix.LOCK_EX); err == unix.EINTR; {
				err = unix.Flock(fd, unix.LOCK_EX)
			}
		}
		if err != nil {
			unix.Close(fd)
			return nil, fatal(fmt.Errorf("lock %s: %w", p.name, err))
		}
		var st, now unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, fatal(fmt.Errorf("stat %s: %w", p.name, err))
		}
		// The holder before us may have finished (renamed) or removed the
		// file between our open and our lock: then this one is no longer at
		// that name, and must not be touched.
		if err := unix.Stat(p.name, &now); err != nil || now.Ino != st.Ino || now.Dev != st.Dev {
			unix.Close(fd)
			p.contended = true
			continue
		}
		p.fd, p.size = fd, st.Size
		p.contended = p.contended || waited
		break
	}
	if p.size == 0 {
		return p, nil
	}
	if v, err := os.ReadFile(p.meta); err == nil {
		p.validator, p.saved = string(v), true
	}
	if _, err := unix.Seek(p.fd, p.size, io.SeekStart); err != nil {
		p.close()
		return nil, fatal(fmt.Errorf("seek %s: %w", p.name, err))
	}
	return p, nil
}

// reset empties the part file for the bytes of a new response, whose
// validator is given.
func (p *partFile) reset(validator string) error {
	if p.size > 0 {
		if err := unix.Ftruncate(p.fd, 0); err != nil {
			return fatal(fmt.Errorf("truncate %s: %w", p.name, err))
		}
		if _, err := unix.Seek(p.fd, 0, io.SeekStart); err != nil {
			return fatal(fmt.Errorf("seek %s: %w", p.name, err))
		}
	}
	if p.saved {
		// The old validator must not outlive the old bytes.
		if err := os.Remove(p.meta); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fatal(fmt.Errorf("remove %s: %w", p.meta, err))
		}
		p.saved = false
	}
	p.size, p.validator = 0, validator
	return nil
}

// save writes the validator down, so a later run can resume the part file.
func (p *partFile) save() error {
	if p.saved || p.validator == "" || p.size == 0 {
		return nil
	}
	if err := os.WriteFile(p.meta, []byte(p.validator), 0o666); err != nil {
		return fatal(fmt.Errorf("write %s: %w", p.meta, err))
	}
	p.saved = true
	return nil
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

// copyFrom appends r to the part file. Errors writing are fatal; errors
// reading are the network's.
func (p *partFile) copyFrom(r io.Reader, progress func(int64)) (int64, error) {
	var buf []byte
	select {
	case buf = <-bufPool:
	default:
		buf = make([]byte, 256<<10)
	}
	defer func() {
		select {
		case bufPool <- buf:
		default:
		}
	}()
	var total int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if err := writeAll(p.fd, buf[:n]); err != nil {
				return total, fatal(fmt.Errorf("write %s: %w", p.name, err))
			}
			p.size += int64(n)
			total += int64(n)
			if progress != nil {
				progress(int64(n))
			}
			if p.size >= saveAfter && !p.saved {
				if err := p.save(); err != nil {
					return total, err
				}
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

// done is called after the rename: the part file and its sidecar are gone.
func (p *partFile) done() {
	p.finished = true
	if p.saved {
		os.Remove(p.meta)
	}
}

// close releases the lock. An unfinished part file keeps its validator for
// the next run; an empty one is removed, since it holds nothing to resume.
func (p *partFile) close() error {
	defer unix.Close(p.fd)
	if p.finished {
		return nil
	}
	if p.size == 0 {
		os.Remove(p.name)
		if p.saved {
			os.Remove(p.meta)
		}
		return nil
	}
	return p.save()
}
