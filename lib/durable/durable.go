// Package durable holds the steps that make a file survive a crash: fsync of
// a directory after a file in it was created or renamed, shared by many
// writers at once (group commit).
package durable

import (
	"fmt"
	"os"
	"sync"

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

// DirSyncer fsyncs directories for many concurrent callers with group
// commit: a caller whose rename happened while a sync of the same directory
// was already running waits for the next sync, which then covers every
// caller that arrived meanwhile. Durability is the same as one SyncDir per
// rename, at a fraction of the fsyncs when files land quickly.
type DirSyncer struct {
	mu   sync.Mutex
	dirs map[string]*dirState
	fds  map[string]int // open directories, so a sync is one system call
}

// maxOpenDirs bounds the descriptors a DirSyncer keeps open.
const maxOpenDirs = 64

type dirState struct {
	running bool
	waiting []chan error // callers that the next sync covers
}

// Close closes the directories kept open.
func (s *DirSyncer) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fd := range s.fds {
		unix.Close(fd)
	}
	s.fds = nil
}

// syncDir fsyncs dir through a kept descriptor when it can.
func (s *DirSyncer) syncDir(dir string) error {
	s.mu.Lock()
	fd, ok := s.fds[dir]
	s.mu.Unlock()
	if !ok {
		var err error
		fd, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("sync directory %s: %w", dir, &os.PathError{Op: "open", Path: dir, Err: err})
		}
		s.mu.Lock()
		if s.fds == nil {
			s.fds = map[string]int{}
		}
		if len(s.fds) < maxOpenDirs {
			s.fds[dir] = fd
		} else {
			defer unix.Close(fd)
		}
		s.mu.Unlock()
	}
	if err := unix.Fsync(fd); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// Sync returns once dir has been fsynced after the call began.
func (s *DirSyncer) Sync(dir string) error {
	done := make(chan error, 1)
	s.mu.Lock()
	if s.dirs == nil {
		s.dirs = map[string]*dirState{}
	}
	st := s.dirs[dir]
	if st == nil {
		st = &dirState{}
		s.dirs[dir] = st
	}
	st.waiting = append(st.waiting, done)
	if !st.running {
		st.running = true
		go s.loop(dir, st)
	}
	s.mu.Unlock()
	return <-done
}

// loop syncs dir until nobody waits for it any more.
func (s *DirSyncer) loop(dir string, st *dirState) {
	for {
		s.mu.Lock()
		batch := st.waiting
		st.waiting = nil
		if len(batch) == 0 {
			st.running = false
			delete(s.dirs, dir)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		err := s.syncDir(dir)
		for _, c := range batch {
			c <- err
		}
	}
}
