package download_test

// Directories made durable before a line counts as done (issue 7 items 8-9),
// and which local errors stop the run (item 7).

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ck-tools/ck/lib/download"
	"github.com/ck-tools/ck/lib/durable"
	"github.com/ck-tools/ck/lib/fetchtest"
)

// syncRecorder syncs directories and records which, in order.
type syncRecorder struct {
	durable.DirSyncer
	mu     sync.Mutex
	synced []string
}

func (r *syncRecorder) Sync(dir string) error {
	err := r.DirSyncer.Sync(dir)
	r.mu.Lock()
	r.synced = append(r.synced, dir)
	r.mu.Unlock()
	return err
}

// take returns the directories synced since the last take.
func (r *syncRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.synced
	r.synced = nil
	return s
}

func recordingFetcher(root string) (*download.Fetcher, *syncRecorder) {
	f := newFetcher(0)
	rec := &syncRecorder{}
	f.Dirs, f.Root = rec, root
	return f, rec
}

// Every directory a download creates is fsynced into its parent, top down,
// and the file's directory after the rename, all before Fetch returns; a
// directory already made and synced in this run is not synced again.
func TestNewDirsSynced(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	root := t.TempDir()
	j := func(p ...string) string { return filepath.Join(append([]string{root}, p...)...) }
	for _, withRoot := range []bool{true, false} {
		t.Run(map[bool]string{true: "with Root", false: "without Root"}[withRoot], func(t *testing.T) {
			sub := map[bool]string{true: "r", false: "n"}[withRoot]
			f, rec := recordingFetcher(root)
			if !withRoot {
				f.Root = ""
			}
			res := f.Fetch(context.Background(), srv.URL+"/f/a?size=10", "h", j(sub, "b", "file"))
			if res.Status != download.Done {
				t.Fatalf("got %s (%v)", res.Status, res.Err)
			}
			if got, want := rec.take(), []string{root, j(sub), j(sub, "b")}; !slices.Equal(got, want) {
				t.Errorf("synced %q; want %q", got, want)
			}
			res = f.Fetch(context.Background(), srv.URL+"/f/b?size=10", "h", j(sub, "b", "other"))
			if got, want := rec.take(), []string{j(sub, "b")}; res.Status != download.Done || !slices.Equal(got, want) {
				t.Errorf("second file: %s, synced %q; want done, %q", res.Status, got, want)
			}
		})
	}
}

// A final file found already there counts as done only once its directory
// is synced, and with Root every directory above it, once per run: the run
// that made them may have been killed before it synced them.
func TestExistingSynced(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	root := t.TempDir()
	j := func(p ...string) string { return filepath.Join(append([]string{root}, p...)...) }
	os.MkdirAll(j("x", "y"), 0o777) // as a killed run left them: never synced
	os.WriteFile(j("x", "y", "file"), []byte("old"), 0o666)
	os.WriteFile(j("x", "y", "file2"), []byte("old"), 0o666)

	f, rec := recordingFetcher(root)
	res := f.Fetch(context.Background(), srv.URL+"/f/a?size=10", "h", j("x", "y", "file"))
	if got, want := rec.take(), []string{root, j("x"), j("x", "y")}; res.Status != download.Exists || !slices.Equal(got, want) {
		t.Errorf("got %s, synced %q; want exists, %q", res.Status, got, want)
	}
	res = f.Fetch(context.Background(), srv.URL+"/f/b?size=10", "h", j("x", "y", "file2"))
	if got, want := rec.take(), []string{j("x", "y")}; res.Status != download.Exists || !slices.Equal(got, want) {
		t.Errorf("second file: %s, synced %q; want exists, %q", res.Status, got, want)
	}

	f, rec = recordingFetcher("")
	res = f.Fetch(context.Background(), srv.URL+"/f/a?size=10", "h", j("x", "y", "file"))
	if got, want := rec.take(), []string{j("x", "y")}; res.Status != download.Exists || !slices.Equal(got, want) {
		t.Errorf("without Root: %s, synced %q; want exists, %q", res.Status, got, want)
	}
	if srv.TotalRequests() != 0 {
		t.Errorf("%d requests; want none", srv.TotalRequests())
	}
}

// The directories remembered as synced are bounded; a forgotten one is made
// and synced again.
func TestKnownDirsBounded(t *testing.T) {
	download.SetMaxKnownDirs(t, 3)
	srv := fetchtest.New()
	defer srv.Close()
	root := t.TempDir()
	f, rec := recordingFetcher(root)
	for i := range 10 {
		dest := filepath.Join(root, "h"+string(rune('0'+i)), "file")
		if res := f.Fetch(context.Background(), srv.URL+"/f/a?size=10", "h", dest); res.Status != download.Done {
			t.Fatalf("%s: %s (%v)", dest, res.Status, res.Err)
		}
		if n := download.KnownDirs(f); n > 3 {
			t.Fatalf("%d directories remembered; want at most 3", n)
		}
	}
	rec.take()
	synced := map[string]bool{}
	for i := range 10 {
		dest := filepath.Join(root, "h"+string(rune('0'+i)), "file2")
		if res := f.Fetch(context.Background(), srv.URL+"/f/b?size=10", "h", dest); res.Status != download.Done {
			t.Fatalf("%s: %s (%v)", dest, res.Status, res.Err)
		}
		for _, d := range rec.take() {
			synced[d] = true
		}
	}
	if !synced[root] {
		t.Errorf("synced %v; want the root again for the forgotten directories", synced)
	}
}

// Which local errors stop the run (fatal) and which fail one line.
func TestLocalErrorClass(t *testing.T) {
	root := "/out"
	pe := func(op, path string, errno unix.Errno) error { return &os.PathError{Op: op, Path: path, Err: errno} }
	tests := []struct {
		name  string
		err   error
		fatal bool
	}{
		{"not a directory", pe("mkdir", "/out/https/h", unix.ENOTDIR), false},
		{"is a directory", pe("open", "/out/https.part", unix.EISDIR), false},
		{"name too long", pe("open", "/out/a/b.part", unix.ENAMETOOLONG), false},
		{"exists", pe("mkdir", "/out/a", unix.EEXIST), false},
		{"symlink loop", pe("stat", "/out/a", unix.ELOOP), false},
		{"too many links", pe("mkdir", "/out/a/b", unix.EMLINK), false},
		{"file too large", pe("open", "/out/a/b.part", unix.EFBIG), false},
		{"rename EISDIR", &os.LinkError{Op: "rename", Old: "/out/a.part", New: "/out/a", Err: unix.EISDIR}, false},
		{"disk full", pe("open", "/out/a/b.part", unix.ENOSPC), true},
		{"quota", pe("mkdir", "/out/a/b", unix.EDQUOT), true},
		{"I/O error", pe("stat", "/out/a/b", unix.EIO), true},
		{"read-only file system", pe("open", "/out/a/b.part", unix.EROFS), true},
		{"out of descriptors", pe("open", "/out/a/b.part", unix.EMFILE), true},
		{"EACCES on the output directory", pe("mkdir", "/out/https", unix.EACCES), true},
		{"EACCES on the output directory itself", pe("open", "/out", unix.EACCES), true},
		{"EACCES deeper", pe("mkdir", "/out/https/h", unix.EACCES), false},
		{"EPERM deeper", pe("open", "/out/a/b.part", unix.EPERM), false},
		{"ENOENT in the output directory (it is gone)", pe("mkdir", "/out/https", unix.ENOENT), true},
		{"ENOENT deeper", pe("mkdir", "/out/https/h", unix.ENOENT), false},
		{"EACCES outside the output directory", pe("open", "/elsewhere/a/b", unix.EACCES), true},
		{"no errno", errors.New("something else"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := download.ClassifyLocal(tt.err, root); got != tt.fatal {
				t.Errorf("fatal(%v) = %v; want %v", tt.err, got, tt.fatal)
			}
		})
	}
	if download.ClassifyLocal(context.Canceled, root) {
		t.Error("context.Canceled is fatal; want it left as it is")
	}
	if !download.ClassifyLocal(pe("mkdir", "/out/https/h", unix.EACCES), "") {
		t.Error("EACCES without a root is an item error; want fatal (nothing says it is not the output directory)")
	}
}
