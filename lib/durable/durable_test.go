package durable_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ck-tools/ck/lib/durable"
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
