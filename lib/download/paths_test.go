package download_test

// Final names that cannot be used, two URLs for one path, item errors that
// are not fatal, a disk that is full, and a .part lock wait that stops on
// cancel (issue 7 items 5-7 and 17).

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ck-tools/ck/lib/download"
	"github.com/ck-tools/ck/lib/fetchtest"
)

// Only a regular file under the final name is done: a directory there, or a
// regular file where a parent directory should be, fails that line (an item
// failure, not a fatal one) with the reason, and no request is made.
func TestFinalNameUnusable(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(dir string) string // returns the final path
		reason  string
	}{
		{"a directory under the final name", func(dir string) string {
			os.Mkdir(filepath.Join(dir, "http"), 0o777)
			return filepath.Join(dir, "http")
		}, "http is a directory"},
		{"a directory under the final name, with Force", func(dir string) string {
			os.MkdirAll(filepath.Join(dir, "d", "sub"), 0o777)
			return filepath.Join(dir, "d")
		}, "d is a directory"},
		{"a parent that is a regular file", func(dir string) string {
			os.WriteFile(filepath.Join(dir, "afile"), []byte("a regular file"), 0o666)
			return filepath.Join(dir, "afile", "b.bin")
		}, "afile is a regular file"},
		{"a grandparent that is a regular file", func(dir string) string {
			os.WriteFile(filepath.Join(dir, "afile"), []byte("a regular file"), 0o666)
			return filepath.Join(dir, "afile", "x", "b.bin")
		}, "afile is a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fetchtest.New()
			defer srv.Close()
			dir := t.TempDir()
			dest := tt.prepare(dir)
			f := newFetcher(0)
			f.Force = strings.Contains(tt.name, "Force")
			res := f.Fetch(context.Background(), srv.URL+"/f/a?size=10", "h", dest)
			if res.Status != download.Failed || res.Fatal || res.Err == nil || !strings.Contains(res.Err.Error(), tt.reason) {
				t.Fatalf("got %s, fatal=%v (%v); want an item failure saying %q", res.Status, res.Fatal, res.Err, tt.reason)
			}
			if n := srv.TotalRequests(); n != 0 {
				t.Errorf("%d requests; want none", n)
			}
		})
	}
}

// A final file made for one URL is not "done" for another URL of the same
// path: that line fails, naming the path and the other URL, and the file
// keeps its bytes. The same URL, or one with the same default name (another
// fragment, the scheme in capitals), counts as done; so does a file without
// the record (made by an older version, or by the user).
func TestSamePathOtherURL(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	dest := filepath.Join(t.TempDir(), "same.bin")
	a, b := srv.URL+"/f/a?size=100", srv.URL+"/f/b?size=200"
	if res := newFetcher(0).Fetch(context.Background(), a, "h", dest); res.Status != download.Done {
		t.Fatalf("first URL: %s (%v)", res.Status, res.Err)
	}
	srv.Reset()
	res := newFetcher(0).Fetch(context.Background(), b, "h", dest)
	if res.Status != download.Failed || res.Fatal || res.Err == nil ||
		!strings.Contains(res.Err.Error(), dest+" is already the file of "+a) {
		t.Fatalf("other URL: %s, fatal=%v (%v); want an item failure naming %s and %s", res.Status, res.Fatal, res.Err, dest, a)
	}
	for _, same := range []string{a, a + "#frag", strings.Replace(a, "http://", "HTTP://", 1)} {
		if res := newFetcher(0).Fetch(context.Background(), same, "h", dest); res.Status != download.Exists {
			t.Errorf("%s: %s (%v); want exists", same, res.Status, res.Err)
		}
	}
	if n := srv.TotalRequests(); n != 0 {
		t.Errorf("%d requests after the first download; want none", n)
	}
	wantBody(t, dest, fetchtest.Body("a", 100))

	// Force replaces the file of the same URL only.
	f := newFetcher(0)
	f.Force = true
	if res := f.Fetch(context.Background(), b, "h", dest); res.Status != download.Failed {
		t.Errorf("other URL with Force: %s (%v); want failed", res.Status, res.Err)
	}
	if res := f.Fetch(context.Background(), a, "h", dest); res.Status != download.Done {
		t.Errorf("same URL with Force: %s (%v); want done", res.Status, res.Err)
	}

	// A file without the record counts as done for any URL.
	plain := filepath.Join(t.TempDir(), "plain.bin")
	os.WriteFile(plain, []byte("the user's"), 0o666)
	if res := newFetcher(0).Fetch(context.Background(), b, "h", plain); res.Status != download.Exists {
		t.Errorf("a file without the record: %s (%v); want exists", res.Status, res.Err)
	}
}

// Where the file system has no extended attributes the URL cannot be
// recorded, and the check is off: a file counts as done for any URL (the
// README says so).
func TestSamePathNoXattrs(t *testing.T) {
	download.RefuseXattrs(t)
	srv := fetchtest.New()
	defer srv.Close()
	dest := filepath.Join(t.TempDir(), "same.bin")
	if res := newFetcher(0).Fetch(context.Background(), srv.URL+"/f/a?size=10", "h", dest); res.Status != download.Done {
		t.Fatalf("first URL: %s (%v)", res.Status, res.Err)
	}
	if res := newFetcher(0).Fetch(context.Background(), srv.URL+"/f/b?size=10", "h", dest); res.Status != download.Exists {
		t.Fatalf("other URL without xattrs: %s (%v); want exists", res.Status, res.Err)
	}
}

// partHolders counts this process's descriptors open on name.
func partHolders(t *testing.T, name string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == name {
			n++
		}
	}
	return n
}

// waitHolders waits until n descriptors are open on name, failing if done
// is closed first.
func waitHolders(t *testing.T, name string, n int, done <-chan download.Result) {
	t.Helper()
	for partHolders(t, name) < n {
		select {
		case res := <-done:
			t.Fatalf("Fetch returned %s (%v) before %d descriptors were open on %s", res.Status, res.Err, n, name)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Two downloads of one path with different URLs at once: the second waits
// for the first one's .part lock, then finds the first URL's file, and must
// fail, not count it as its own. The first one's .part exists once its
// response brings bytes, so the server sends some of them before it waits;
// its body is large enough to be worth resuming, so its .part has a name
// (see TestSamePathInFlightSmall for the unnamed one).
func TestSamePathInFlight(t *testing.T) {
	gate := make(chan struct{})
	bodyA := fetchtest.Body("a", 100_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/a" {
			w.Header().Set("Content-Length", strconv.Itoa(len(bodyA)))
			w.Write(bodyA[:500])
			w.(http.Flusher).Flush()
			<-gate
			w.Write(bodyA[500:])
			return
		}
		w.Write(fetchtest.Body("b", 2000))
	}))
	defer srv.Close()
	dest := filepath.Join(t.TempDir(), "same.bin")
	f := newFetcher(0)
	resA, resB := make(chan download.Result, 1), make(chan download.Result, 1)
	go func() { resA <- f.Fetch(context.Background(), srv.URL+"/a", "h", dest) }()
	waitHolders(t, dest+".part", 1, resA)
	go func() { resB <- f.Fetch(context.Background(), srv.URL+"/b", "h", dest) }()
	waitHolders(t, dest+".part", 2, resB) // B opened the .part and waits for its lock
	close(gate)
	if res := <-resA; res.Status != download.Done {
		t.Fatalf("first URL: %s (%v)", res.Status, res.Err)
	}
	res := <-resB
	if res.Status != download.Failed || res.Fatal || res.Err == nil || !strings.Contains(res.Err.Error(), srv.URL+"/a") {
		t.Fatalf("second URL: %s, fatal=%v (%v); want an item failure naming %s", res.Status, res.Fatal, res.Err, srv.URL+"/a")
	}
	wantBody(t, dest, bodyA)
}

// Waiting for a .part lock that another process holds stops when the context
// is cancelled: Fetch returns Canceled while the lock is still held, and the
// .part is untouched.
func TestLockWaitCanceled(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	dest := filepath.Join(t.TempDir(), "file")
	part := dest + ".part"
	held := []byte("bytes of another process's download")
	if err := os.WriteFile(part, held, 0o666); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(part, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	// Should Fetch ignore the cancel, the lock is let go after a while, so
	// that the test fails instead of hanging.
	released := make(chan struct{})
	timer := time.AfterFunc(20*time.Second, func() { close(released); unix.Close(fd) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan download.Result, 1)
	go func() { done <- newFetcher(0).Fetch(ctx, srv.URL+"/f/a?size=10", "h", dest) }()
	waitHolders(t, part, 2, done)
	cancel()
	res := <-done
	select {
	case <-released:
		t.Fatalf("Fetch returned %s only after the lock was released; want it to stop on cancel", res.Status)
	default:
	}
	if timer.Stop() {
		defer unix.Close(fd)
	}
	if res.Status != download.Canceled {
		t.Fatalf("got %s (%v); want canceled", res.Status, res.Err)
	}
	if got, err := os.ReadFile(part); err != nil || string(got) != string(held) {
		t.Errorf(".part after the cancel: %q, %v; want %q untouched", got, err, held)
	}
	if srv.TotalRequests() != 0 {
		t.Errorf("%d requests; want none", srv.TotalRequests())
	}
}

// A full disk stops the run: the result is fatal. The disk is a 64 KiB
// tmpfs, mounted when the test may mount (as root).
func TestDiskFullIsFatal(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs (%v: %s); ENOSPC is classified by TestLocalErrorClass", err, out)
	}
	defer exec.Command("umount", dir).Run()
	srv := fetchtest.New()
	defer srv.Close()
	f := newFetcher(0)
	defer f.Dirs.Close() // before the umount: it keeps directories open
	res := f.Fetch(context.Background(), srv.URL+"/f/a?size=300000", "h", filepath.Join(dir, "host", "big"))
	if res.Status != download.Failed || !res.Fatal || !errors.Is(res.Err, unix.ENOSPC) {
		t.Fatalf("got %s, fatal=%v (%v); want a fatal ENOSPC", res.Status, res.Fatal, res.Err)
	}
}
