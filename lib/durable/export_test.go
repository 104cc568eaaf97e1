package durable

import "testing"

// HoldSyncs makes every directory fsync call hook first, until t ends.
func HoldSyncs(t testing.TB, hook func(fd int)) {
	old := fsync
	fsync = func(fd int) error { hook(fd); return old(fd) }
	t.Cleanup(func() { fsync = old })
}

// Waiting is how many callers wait for the next sync of dir.
func (s *DirSyncer) Waiting(dir string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.dirs[dir]; st != nil {
		return len(st.waiting)
	}
	return 0
}
