package download_test

// Servers that lie, kill -9 and power loss (issue 7 items 1-4), and error
// bodies that keep their connection (item 18).

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ck-tools/ck/lib/download"
	"github.com/ck-tools/ck/lib/fetchtest"
)

// A 206 that ends before the total keeps its bytes and the next request
// asks for the rest; such answers do not use up the retries.
func TestShort206(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	const size = 100000
	path := "/f/s?size=100000&truncate=30000&short206=20000"
	res, dest := fetch(t, newFetcher(1), srv, path) // one retry: the truncation
	if res.Status != download.Done {
		t.Fatalf("got %s after %d attempts (%v)", res.Status, res.Attempts, res.Err)
	}
	wantBody(t, dest, fetchtest.Body("s", size))
	// 70000 bytes left after the cut, 20000 per 206: 4 ranged requests.
	if st := srv.URLStats(path); st.Ranged != 4 || res.Attempts != 5 || res.Bytes != size {
		t.Errorf("%d ranged requests, %d attempts, %d bytes; want 4, 5, %d", st.Ranged, res.Attempts, res.Bytes, size)
	}
}

// A 206 that brings no byte is a failed attempt, so a server that always
// answers so cannot keep the loop going, and the short file is not final.
func TestShort206NoProgress(t *testing.T) {
	const size = 10000
	body := fetchtest.Body("n", size)
	reqs := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs++
		w.Header().Set("ETag", `"n1"`)
		rg := r.Header.Get("Range")
		if rg == "" { // half the body under a full length, then the connection ends
			w.Header().Set("Content-Length", strconv.Itoa(size))
			w.Write(body[:size/2])
			return
		}
		var from int
		fmt.Sscanf(rg, "bytes=%d-", &from)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, size-1, size))
		w.WriteHeader(http.StatusPartialContent)
		http.NewResponseController(w).Flush() // chunked, and no byte follows
	}))
	defer srv.Close()
	dest := filepath.Join(t.TempDir(), "file")
	res := newFetcher(3).Fetch(context.Background(), srv.URL+"/n", "h", dest)
	if res.Status != download.Failed || res.Attempts != 4 || reqs != 4 {
		t.Fatalf("got %s after %d attempts, %d requests (%v); want failed after 4", res.Status, res.Attempts, reqs, res.Err)
	}
	if _, err := os.Stat(dest); err == nil {
		t.Error("a short file is under its final name")
	}
	if st, err := os.Stat(dest + ".part"); err != nil || st.Size() != size/2 {
		t.Errorf(".part: %v, %v; want the %d bytes received kept", st, err, size/2)
	}
}

// A server that honours Range but ignores If-Range sends the new version's
// bytes in its 206: they are never glued onto the old ones.
func TestIfRangeIgnored(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	path := "/f/r?size=100000&truncate=30000&etag=changing&ignoreifrange=1"
	res, dest := fetch(t, newFetcher(2), srv, path)
	if res.Status != download.Done {
		t.Fatalf("got %s after %d attempts (%v)", res.Status, res.Attempts, res.Err)
	}
	// Request 1: version 1, cut; request 2: a 206 of version 2, refused;
	// request 3: version 3, whole.
	wantBody(t, dest, fetchtest.BodyVersion("r", 3, 100000))
	if st := srv.URLStats(path); st.Requests != 3 || st.Ranged != 1 {
		t.Errorf("%d requests, %d ranged; want 3 and 1", st.Requests, st.Ranged)
	}
}

// A Last-Modified that equals Date is a weak validator (RFC 9110 8.8.2.2):
// it is never sent in If-Range, and the download restarts from zero.
func TestWeakLastModified(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	path := "/f/r?size=100000&truncate=30000&weaklastmod=1"
	res, dest := fetch(t, newFetcher(1), srv, path)
	if res.Status != download.Done {
		t.Fatalf("got %s after %d attempts (%v)", res.Status, res.Attempts, res.Err)
	}
	wantBody(t, dest, fetchtest.Body("r", 100000))
	for _, r := range srv.Log() {
		if r.Range != "" || r.IfRange != "" {
			t.Errorf("request with Range %q, If-Range %q; want neither", r.Range, r.IfRange)
		}
	}
}

// Error answers are drained before they are closed, so their connection is
// used again: 200 404s, 503s, 416s or refused 206s from one host take a
// handful of connections, not one each.
func TestErrorsReuseConnections(t *testing.T) {
	tests := []struct {
		name, path string
		part       []byte // a .part left before each fetch
		validator  string // its validator; "HEAD": the resource's ETag
		status     download.Status
	}{
		{"404", "/status/404", nil, "", download.Failed},
		{"503", "/f/e?fail=1000", nil, "", download.Failed},
		{"416 of a whole part", "/f/w?size=5000", fetchtest.Body("w", 5000), "HEAD", download.Done},
		{"416 of a part too long", "/f/w?size=5000", append(fetchtest.Body("w", 5000), "junk"...), "HEAD", download.Failed},
		{"206 of another version", "/f/c?size=5000&ignoreifrange=1", fetchtest.Body("c", 1000), `"old"`, download.Failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fetchtest.New()
			defer srv.Close()
			validator := tt.validator
			if validator == "HEAD" {
				validator = etagOf(t, srv, tt.path)
			}
			srv.Reset()
			f := newFetcher(0)
			const n = 200
			for i := range n {
				dest := filepath.Join(t.TempDir(), "file")
				if tt.part != nil {
					leavePart(t, dest, tt.part, validator)
				}
				if res := f.Fetch(context.Background(), srv.URL+tt.path, "h", dest); res.Status != tt.status {
					t.Fatalf("fetch %d: %s (%v), want %s", i, res.Status, res.Err, tt.status)
				}
			}
			if got := srv.Conns(); got > 4 {
				t.Errorf("%d fetches opened %d connections; want at most 4", n, got)
			}
		})
	}
}

// killChildEnv names the URL that TestKillChild downloads when the test
// binary runs as the child of TestResumeAfterKill.
const killChildEnv = "CK_DOWNLOAD_KILL_CHILD"

// TestKillChild is not a test: it is the process that TestResumeAfterKill
// starts and kills. It downloads $CK_DOWNLOAD_KILL_CHILD into $CK_DEST.
func TestKillChild(t *testing.T) {
	u := os.Getenv(killChildEnv)
	if u == "" {
		t.Skip("run by TestResumeAfterKill")
	}
	if os.Getenv("CK_NOXATTR") == "1" {
		download.RefuseXattrs(t)
	}
	res := newFetcher(0).Fetch(context.Background(), u, "h", os.Getenv("CK_DEST"))
	t.Fatalf("the download ended (%s, %v) before it was killed", res.Status, res.Err)
}

// killDuring runs a download of path in a child process, waits until its
// .part holds at least want bytes and kills it with SIGKILL, so no clean-stop
// code runs. It returns the final name.
func killDuring(t *testing.T, srv *fetchtest.Server, path string, want int64, noXattr bool) string {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "file")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"="+srv.URL+path, "CK_DEST="+dest, "CK_NOXATTR="+map[bool]string{true: "1"}[noXattr])
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		if st, err := os.Stat(dest + ".part"); err == nil && st.Size() >= want {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the child ended before it was killed: %v", err)
		case <-time.After(2 * time.Millisecond):
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	return dest
}

// rangesSince returns the Range headers of the requests logged after the
// first skip ones.
func rangesSince(srv *fetchtest.Server, skip int) []string {
	var r []string
	for _, e := range srv.Log()[skip:] {
		r = append(r, e.Range)
	}
	return r
}

// After kill -9, a .part of 64 KiB or more resumes from its size with one
// Range request, whatever the size of the file: the validator was written
// down before the part became worth resuming.
func TestResumeAfterKill(t *testing.T) {
	tests := []struct {
		name    string
		size    int64
		at      int64
		noXattr bool
	}{
		{"just 64 KiB", 300000, 64 << 10, false},
		{"100 kB of 300 kB", 300000, 100000, false},
		{"17 MB of 20 MB", 20000000, 17000000, false},
		{"100 kB of 300 kB, no xattrs", 300000, 100000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fetchtest.New()
			defer srv.Close()
			path := fmt.Sprintf("/f/k?size=%d&stall=%d", tt.size, tt.at)
			if tt.noXattr {
				download.RefuseXattrs(t)
			}
			dest := killDuring(t, srv, path, tt.at, tt.noXattr)
			if _, err := os.Stat(dest + ".part.etag"); (err == nil) != tt.noXattr {
				t.Errorf("sidecar %s.part.etag: %v; want it only where xattrs are refused", dest, err)
			}
			res := newFetcher(0).Fetch(context.Background(), srv.URL+path, "h", dest)
			if res.Status != download.Done {
				t.Fatalf("after the kill: %s (%v)", res.Status, res.Err)
			}
			wantBody(t, dest, fetchtest.Body("k", tt.size))
			if _, err := unix.Getxattr(dest, "user.ck.part", nil); err != unix.ENODATA {
				t.Errorf("the final file's xattr user.ck.part: %v; want none (ENODATA)", err)
			}
			want := fmt.Sprintf("bytes=%d-", tt.at)
			if got := rangesSince(srv, 1); len(got) != 1 || got[0] != want || res.Bytes != tt.size-tt.at {
				t.Errorf("after the kill: requests with Range %q and %d bytes; want one with %q and %d", got, res.Bytes, want, tt.size-tt.at)
			}
		})
	}
}

// After a power loss (the boot id changed), a .part is cut to the length
// that was fsynced and recorded (every 8 MiB), or dropped when none was: it
// never carries bytes that might not have reached the disk.
func TestResumeAfterReboot(t *testing.T) {
	tests := []struct {
		name      string
		size, at  int64
		noXattr   bool
		wantRange string // "" : restarted from zero
	}{
		{"100 kB, nothing fsynced", 300000, 100000, false, ""},
		{"17 MB, fsynced at 16 MiB", 20000000, 17000000, false, "bytes=16777216-"},
		{"17 MB, fsynced at 16 MiB, no xattrs", 20000000, 17000000, true, "bytes=16777216-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fetchtest.New()
			defer srv.Close()
			path := fmt.Sprintf("/f/b?size=%d&stall=%d", tt.size, tt.at)
			if tt.noXattr {
				download.RefuseXattrs(t)
			}
			dest := killDuring(t, srv, path, tt.at, tt.noXattr)
			boot := filepath.Join(t.TempDir(), "boot_id")
			os.WriteFile(boot, []byte("00000000-0000-0000-0000-000000000000\n"), 0o666)
			download.SetBootIDPath(t, boot)
			res := newFetcher(0).Fetch(context.Background(), srv.URL+path, "h", dest)
			if res.Status != download.Done {
				t.Fatalf("after the reboot: %s (%v)", res.Status, res.Err)
			}
			wantBody(t, dest, fetchtest.Body("b", tt.size))
			if got := rangesSince(srv, 1); len(got) != 1 || got[0] != tt.wantRange {
				t.Errorf("after the reboot: requests with Range %q; want one with %q", got, tt.wantRange)
			}
		})
	}
}
