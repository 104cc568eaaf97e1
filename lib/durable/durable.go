// Package durable holds the steps that make a file survive a crash: fsync of
// a directory after a file in it was created or renamed, shared by many
// writers at once (group commit), and directories created so that their
// names survive too.
package durable

import (
	"container/list"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// SyncDir fsyncs the directory dir, so that the creation or renaming of an
// entry in it survives a power loss (a file's own fsync does not cover its
// name).
func SyncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, &os.PathError{Op: "open", Path: dir, Err: err})
	}
	err = unix.Fsync(fd)
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// MkdirAll creates dir and any missing parents, as os.MkdirAll does, and
// fsyncs the parent of each directory it creates, top down, before it
// returns: a new directory's name is durable only once its parent is
// fsynced, and a file renamed into it is lost with it after a power loss
// otherwise. sync is the fsync (SyncDir, or a DirSyncer's Sync for group
// commit). A directory that another process created at the same moment
// (mkdir says EEXIST) is synced into its parent as well, since its creator
// may not have done so yet. Errors are *os.PathError of the failing step.
func MkdirAll(dir string, sync func(dir string) error) error {
	var st unix.Stat_t
	err := unix.Stat(dir, &st)
	if err == nil {
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return &os.PathError{Op: "mkdir", Path: dir, Err: unix.ENOTDIR}
		}
		return nil
	}
	if err != unix.ENOENT {
		return &os.PathError{Op: "mkdir", Path: dir, Err: err}
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAll(parent, sync); err != nil {
			return err
		}
	}
	if err := unix.Mkdir(dir, 0o777); err != nil {
		if err != unix.EEXIST {
			return &os.PathError{Op: "mkdir", Path: dir, Err: err}
		}
		if err := unix.Stat(dir, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return &os.PathError{Op: "mkdir", Path: dir, Err: unix.ENOTDIR}
		}
	}
	if err := sync(parent); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return err
		}
		return &os.PathError{Op: "sync", Path: parent, Err: err}
	}
	return nil
}

// AppendFile appends what r holds to the file name, creating it if missing,
// and fsyncs it; a file it created has its directory fsynced too, so the
// bytes survive a power loss under that name. It keeps what a repair cuts
// off (CHECKPOINT.torn, FAILED.torn): a crash before the cut saves the same
// bytes again on the next run, a repeat and never a loss.
func AppendFile(name string, r io.Reader) error {
	_, statErr := os.Stat(name)
	f, err := os.OpenFile(name, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o666)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && errors.Is(statErr, fs.ErrNotExist) {
		err = SyncDir(filepath.Dir(name))
	}
	return err
}

// DirSyncer fsyncs directories for many concurrent callers with group
// commit: a caller whose rename happened while a sync of the same directory
// was already running waits for the next sync, which then covers every
// caller that arrived meanwhile. Durability is the same as one SyncDir per
// rename, at a fraction of the fsyncs when files land quickly.
type DirSyncer struct {
	mu   sync.Mutex
	dirs map[string]*dirState
	// The directories kept open, so that a sync needs no open and close
	// (only the stat that checks the name still names it, see take): the
	// most recently synced ones, at most KeptDirs.
	kept map[string]*list.Element // of *keptDir
	lru  list.List                // of *keptDir, the most recently used first
	fds  atomic.Int64             // directories open, kept or being synced, or about to be opened

	// Room, if set, is called before a directory is opened, once Open
	// counts it: ckfetch's connection pool closes an idle connection then if
	// the descriptors it shares with the files would be over its limit.
	Room func()
}

// Open is the number of directories s has open now: those it keeps and
// those being synced (ckfetch's connection pool leaves room for them).
func (s *DirSyncer) Open() int { return int(s.fds.Load()) }

func (s *DirSyncer) closeFd(fd int) {
	unix.Close(fd)
	s.fds.Add(-1)
}

// fsync is unix.Fsync; tests count and hold the syncs through it.
var fsync = unix.Fsync

// KeptDirs bounds the directories a DirSyncer keeps open between syncs:
// a few, so that the descriptors of a run stay a small constant plus a few
// per download slot (a run into many directories, one per host, gains
// little from keeping more, and a low `ulimit -n` would be used up). A
// directory being synced that is not kept is opened for the sync and
// closed after it.
const KeptDirs = 8

type keptDir struct {
	dir      string
	fd       int
	dev, ino uint64 // of the directory fd is open on
	busy     bool   // a sync uses fd
	gone     bool   // no longer kept: the sync that uses fd closes it
}

// names reports whether dir still names the directory k is open on: one
// moved away and made again under its name (or removed) is another, which
// a sync through k would not reach. One stat: next to a directory's fsync
// on a disk, nothing.
func (k *keptDir) names(dir string) bool {
	var st unix.Stat_t
	return unix.Stat(dir, &st) == nil && st.Dev == k.dev && st.Ino == k.ino
}

type dirState struct {
	running bool
	waiting []chan error // callers that the next sync covers
}

// Close closes the directories kept open.
func (s *DirSyncer) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for e := s.lru.Front(); e != nil; e = e.Next() {
		if k := e.Value.(*keptDir); k.busy {
			k.gone = true
		} else {
			s.closeFd(k.fd)
		}
	}
	s.kept = nil
	s.lru.Init()
}

// syncDir fsyncs dir through a kept descriptor when it can. Only one sync
// of a directory runs at a time (see loop).
func (s *DirSyncer) syncDir(dir string) error {
	k, err := s.take(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, &os.PathError{Op: "open", Path: dir, Err: err})
	}
	err = fsync(k.fd)
	s.mu.Lock()
	k.busy = false
	if k.gone {
		s.closeFd(k.fd)
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// take returns dir's kept descriptor, busy, opening and keeping it if it
// has none (and closing the least recently used kept one beyond KeptDirs).
// A kept descriptor of a directory that dir no longer names (replaced
// under its name, or removed) is closed, and dir opened again. When the
// process is out of descriptors it closes the idle kept ones and tries
// again.
func (s *DirSyncer) take(dir string) (*keptDir, error) {
	s.mu.Lock()
	if e := s.kept[dir]; e != nil {
		k := e.Value.(*keptDir)
		k.busy = true
		s.lru.MoveToFront(e)
		s.mu.Unlock()
		if k.names(dir) {
			return k, nil
		}
		s.mu.Lock()
		if s.kept[dir] == e { // still kept (not dropped meanwhile): no longer
			s.lru.Remove(e)
			delete(s.kept, dir)
		}
		s.closeFd(k.fd)
	}
	s.mu.Unlock()
	s.fds.Add(1)
	if s.Room != nil {
		s.Room()
	}
	fd, err := openDir(dir)
	if err == unix.EMFILE && s.closeIdle() {
		fd, err = openDir(dir)
	}
	var st unix.Stat_t
	if err == nil {
		if err = unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		s.fds.Add(-1)
		return nil, err
	}
	k := &keptDir{dir: dir, fd: fd, dev: st.Dev, ino: st.Ino, busy: true}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kept == nil {
		s.kept = map[string]*list.Element{}
	}
	if _, ok := s.kept[dir]; ok {
		k.gone = true // kept meanwhile: this one is closed after the sync
		return k, nil
	}
	s.kept[dir] = s.lru.PushFront(k)
	for s.lru.Len() > KeptDirs {
		old := s.lru.Remove(s.lru.Back()).(*keptDir)
		delete(s.kept, old.dir)
		if old.busy {
			old.gone = true
		} else {
			s.closeFd(old.fd)
		}
	}
	return k, nil
}

func openDir(dir string) (int, error) {
	for {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// closeIdle closes the kept directories no sync uses, and reports whether
// it closed any.
func (s *DirSyncer) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	closed := false
	for e := s.lru.Front(); e != nil; {
		next := e.Next()
		if k := e.Value.(*keptDir); !k.busy {
			s.lru.Remove(e)
			delete(s.kept, k.dir)
			s.closeFd(k.fd)
			closed = true
		}
		e = next
	}
	return closed
}

// Sync returns once dir has been fsynced after the call began. A caller
// that finds no sync of dir running makes it itself, with no goroutine or
// channel (the common case when fsync is quick); callers that arrive while
// one runs wait for the next, which one sync covers for all of them.
func (s *DirSyncer) Sync(dir string) error {
	s.mu.Lock()
	if s.dirs == nil {
		s.dirs = map[string]*dirState{}
	}
	st := s.dirs[dir]
	if st == nil {
		st = &dirState{}
		s.dirs[dir] = st
	}
	if st.running {
		done := make(chan error, 1)
		st.waiting = append(st.waiting, done)
		s.mu.Unlock()
		return <-done
	}
	st.running = true
	s.mu.Unlock()
	err := s.syncDir(dir)
	s.mu.Lock()
	if !s.ended(dir, st) {
		// Those who came meanwhile need a sync that begins after them:
		// loop makes it, and any that follow, while this caller returns.
		go s.loop(dir, st)
	}
	s.mu.Unlock()
	return err
}

// ended ends the syncs of dir if nobody waits for one, and reports whether
// it did. s.mu is held.
func (s *DirSyncer) ended(dir string, st *dirState) bool {
	if len(st.waiting) > 0 {
		return false
	}
	st.running = false
	delete(s.dirs, dir)
	return true
}

// loop syncs dir until nobody waits for it any more.
func (s *DirSyncer) loop(dir string, st *dirState) {
	for {
		s.mu.Lock()
		if s.ended(dir, st) {
			s.mu.Unlock()
			return
		}
		batch := st.waiting
		st.waiting = nil
		s.mu.Unlock()
		err := s.syncDir(dir)
		for _, c := range batch {
			c <- err
		}
	}
}
