package durable_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/durable"
	"golang.org/x/sys/unix"
)

func TestSyncDir(t *testing.T) {
	if err := durable.SyncDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	if err := durable.SyncDir(missing); err == nil {
		t.Fatalf("SyncDir(%s) = nil, want an error", missing)
	}
}

// Many concurrent callers over several directories all get their sync, and
// a missing directory is an error for its callers only.
func TestDirSyncer(t *testing.T) {
	var s durable.DirSyncer
	defer s.Close()
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	missing := filepath.Join(t.TempDir(), "missing")
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for i := range 300 {
		wg.Go(func() {
			d := dirs[i%len(dirs)]
			if err := os.WriteFile(filepath.Join(d, "f"), nil, 0o666); err != nil {
				errs <- err
			}
			errs <- s.Sync(d)
		})
	}
	for range 100 {
		wg.Go(func() {
			if err := s.Sync(missing); err == nil {
				errs <- os.ErrInvalid
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// recorder records the directories it is asked to sync, and syncs them.
type recorder struct {
	mu     sync.Mutex
	synced []string
}

func (r *recorder) sync(dir string) error {
	r.mu.Lock()
	r.synced = append(r.synced, dir)
	r.mu.Unlock()
	return durable.SyncDir(dir)
}

// MkdirAll fsyncs the parent of each directory it creates, top down, and
// nothing when nothing is new; a regular file on the way is an error.
func TestMkdirAll(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "file"), nil, 0o666)
	os.Mkdir(filepath.Join(root, "old"), 0o777)
	j := func(p ...string) string { return filepath.Join(append([]string{root}, p...)...) }
	tests := []struct {
		name, dir string
		synced    []string
		err       bool
	}{
		{"three new", j("a", "b", "c"), []string{root, j("a"), j("a", "b")}, false},
		{"all there", j("a", "b", "c"), nil, false},
		{"one new under old ones", j("a", "b", "d"), []string{j("a", "b")}, false},
		{"new under an old one", j("old", "x"), []string{j("old")}, false},
		{"the directory itself is a file", j("file"), nil, true},
		{"under a regular file", j("file", "x", "y"), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recorder
			err := durable.MkdirAll(tt.dir, r.sync)
			if (err != nil) != tt.err {
				t.Fatalf("MkdirAll(%s) = %v; want error %v", tt.dir, err, tt.err)
			}
			if !slices.Equal(r.synced, tt.synced) {
				t.Errorf("synced %q; want %q", r.synced, tt.synced)
			}
			if st, err := os.Stat(tt.dir); !tt.err && (err != nil || !st.IsDir()) {
				t.Errorf("%s after MkdirAll: %v, %v; want a directory", tt.dir, st, err)
			}
		})
	}
}

// A failed sync is MkdirAll's error: the new directory is not durable.
func TestMkdirAllSyncError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	boom := errors.New("boom")
	err := durable.MkdirAll(dir, func(string) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("MkdirAll = %v; want the sync error", err)
	}
}

// Many callers making the same new directories at once (mkdir racing mkdir:
// EEXIST) all succeed.
func TestMkdirAllConcurrent(t *testing.T) {
	root := t.TempDir()
	var s durable.DirSyncer
	defer s.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Go(func() { errs <- durable.MkdirAll(filepath.Join(root, "a", "b", string(rune('a'+i%5))), s.Sync) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestDirSyncerKeepsFewOpen: over many directories synced at once and
// again, at most KeptDirs stay open between syncs (the most recent), and
// Close closes them.
func TestDirSyncerKeepsFewOpen(t *testing.T) {
	root := t.TempDir()
	var dirs []string
	for i := range 50 {
		d := filepath.Join(root, fmt.Sprint(i))
		if err := os.Mkdir(d, 0o777); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	openUnder := func() int {
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd to count descriptors")
		}
		n := 0
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, root+"/") {
				n++
			}
		}
		return n
	}
	var s durable.DirSyncer
	var wg sync.WaitGroup
	errs := make(chan error, 3*len(dirs))
	for range 3 {
		for _, d := range dirs {
			wg.Go(func() { errs <- s.Sync(d) })
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := openUnder(); n == 0 || n > durable.KeptDirs || s.Open() != n {
		t.Errorf("%d directories open after the syncs (Open says %d); want 1 to KeptDirs = %d, and Open the same", n, s.Open(), durable.KeptDirs)
	}
	s.Close()
	if n := openUnder(); n != 0 || s.Open() != 0 {
		t.Errorf("%d directories open after Close (Open says %d); want 0", n, s.Open())
	}
}

// TestDirSyncerRoom: Room is called before a directory is opened for its
// sync, with Open already counting it (ckfetch's pool closes an idle
// connection then to stay within its descriptors), and not for a
// directory kept open.
func TestDirSyncerRoom(t *testing.T) {
	dir := t.TempDir()
	var s durable.DirSyncer
	defer s.Close()
	var at []int
	s.Room = func() { at = append(at, s.Open()) }
	for range 3 {
		if err := s.Sync(dir); err != nil {
			t.Fatal(err)
		}
	}
	if len(at) != 1 || at[0] != 1 {
		t.Errorf("Room called with Open = %v over 3 syncs of one directory; want once, with Open 1 (the directory about to be opened)", at)
	}
	at = nil
	if err := s.Sync(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a sync of a missing directory succeeded")
	}
	if len(at) != 1 || s.Open() != 1 {
		t.Errorf("a failed open: Room called %d times, Open %d after; want once, and Open back to 1 (the kept one)", len(at), s.Open())
	}
}

// TestDirSyncerGroupCommit: a caller that arrives while a sync of its
// directory runs returns only after a sync that began after it, and the
// callers that arrive together share that one sync.
func TestDirSyncerGroupCommit(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	syncs := 0
	first := make(chan struct{}) // the first sync has begun
	release := make(chan struct{})
	durable.HoldSyncs(t, func(int) {
		mu.Lock()
		syncs++
		n := syncs
		mu.Unlock()
		if n == 1 {
			close(first)
			<-release
		}
	})
	var s durable.DirSyncer
	defer s.Close()
	leader := make(chan error, 1)
	go func() { leader <- s.Sync(dir) }()
	<-first
	const waiters = 5
	done := make(chan int, waiters) // the syncs begun when each waiter returned
	for range waiters {
		go func() {
			if err := s.Sync(dir); err != nil {
				t.Error(err)
			}
			mu.Lock()
			done <- syncs
			mu.Unlock()
		}()
	}
	// The waiters are queued behind the running sync (bounded wait: the
	// test only needs them to have called Sync before the release).
	for i := 0; i < 1000 && s.Waiting(dir) < waiters; i++ {
		time.Sleep(time.Millisecond)
	}
	if n := s.Waiting(dir); n != waiters {
		t.Fatalf("%d callers wait for the next sync; want %d", n, waiters)
	}
	select {
	case n := <-done:
		t.Fatalf("a caller returned while the sync that began before it was still running (%d syncs)", n)
	default:
	}
	close(release)
	if err := <-leader; err != nil {
		t.Fatal(err)
	}
	for range waiters {
		if n := <-done; n < 2 {
			t.Errorf("a caller that arrived during the first sync returned after %d syncs; want the second", n)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if syncs != 2 {
		t.Errorf("%d syncs for a leader and %d callers that arrived together; want 2 (one covers them all)", syncs, waiters)
	}
}

// TestDirSyncerReplacedDir: a directory replaced under its name (moved
// away, made again) between two syncs is the new one that the second sync
// reaches, not the one kept open: a file linked into the new directory is
// durable only through its fsync.
func TestDirSyncerReplacedDir(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "d")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var synced []uint64 // the inode of each directory fsynced
	durable.HoldSyncs(t, func(fd int) {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Error(err)
		}
		mu.Lock()
		synced = append(synced, st.Ino)
		mu.Unlock()
	})
	var s durable.DirSyncer
	defer s.Close()
	if err := s.Sync(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir, filepath.Join(root, "old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(dir); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(synced) != 2 || synced[1] != st.Ino {
		t.Fatalf("fsynced inodes %v; want the second sync on the new directory, inode %d", synced, st.Ino)
	}
	if n := s.Open(); n != 1 {
		t.Errorf("%d directories open after the syncs; want 1 (the old one closed)", n)
	}
	// Removed: an error, not a sync of the kept descriptor of what is gone.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(dir); err == nil {
		t.Errorf("Sync of a removed directory = nil; want an error")
	}
}
