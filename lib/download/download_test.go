package download_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/download"
	"github.com/ck-tools/ck/lib/durable"
	"github.com/ck-tools/ck/lib/fetchtest"
)

func newFetcher(retries int) *download.Fetcher {
	return &download.Fetcher{
		Client:       mustClient(download.NewClient(download.ClientOptions{ConnectTimeout: 5 * time.Second, Jobs: 4, PerHost: 4})),
		Retries:      retries,
		Backoff:      time.Millisecond,
		MaxBackoff:   10 * time.Millisecond,
		StallTimeout: 0,
		Dirs:         &durable.DirSyncer{},
	}
}

// fetch downloads srv.URL+path into a temporary directory.
func fetch(t *testing.T, f *download.Fetcher, srv *fetchtest.Server, path string) (download.Result, string) {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "file")
	return f.Fetch(context.Background(), srv.URL+path, "h", dest), dest
}

func wantBody(t *testing.T, dest string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, not the %d bytes the server sent", dest, len(got), len(want))
	}
	if m, _ := filepath.Glob(dest + ".part*"); len(m) > 0 {
		t.Errorf("left behind: %v", m)
	}
}

func TestStatuses(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	tests := []struct {
		name, path     string
		retries        int
		status         download.Status
		attempts, reqs int
	}{
		{"plain", "/f/a?size=1000", 3, download.Done, 1, 1},
		{"empty", "/f/a?size=0", 3, download.Done, 1, 1},
		{"503 twice then ok", "/f/a?size=10&fail=2", 3, download.Done, 3, 3},
		{"500 retried", "/f/a?size=10&fail=1&status=500", 3, download.Done, 2, 2},
		{"408 retried", "/f/a?size=10&fail=1&status=408", 3, download.Done, 2, 2},
		{"429 retried", "/f/a?size=10&fail=1&status=429", 3, download.Done, 2, 2},
		{"retries exhausted", "/f/a?size=10&fail=9", 2, download.Failed, 3, 3},
		{"404 fails at once", "/status/404", 3, download.Failed, 1, 1},
		{"403 fails at once", "/status/403", 3, download.Failed, 1, 1},
		{"redirects followed", "/f/a?size=10&redirect=3", 3, download.Done, 1, 4},
		{"ten redirects followed", "/f/a?size=10&redirect=10", 3, download.Done, 1, 11},
		{"redirect loop stops", "/f/a?size=10&redirect=12", 3, download.Failed, 1, 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.Reset()
			res, _ := fetch(t, newFetcher(tt.retries), srv, tt.path)
			if res.Status != tt.status || res.Attempts != tt.attempts || srv.TotalRequests() != tt.reqs {
				t.Errorf("got %s after %d attempts and %d requests (%v); want %s, %d, %d",
					res.Status, res.Attempts, srv.TotalRequests(), res.Err, tt.status, tt.attempts, tt.reqs)
			}
		})
	}
}

func TestRedirectFinalURL(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	res, dest := fetch(t, newFetcher(0), srv, "/f/a?size=10&redirect=2")
	if want := srv.URL + "/f/a?size=10"; res.FinalURL != want {
		t.Errorf("FinalURL = %q, want %q", res.FinalURL, want)
	}
	wantBody(t, dest, fetchtest.Body("a", 10))
}

// A connection cut at 60% is resumed with a Range request: the file is exact
// and the server sends less than 1.5 times its size after a clean close. A
// reset (RST) also throws away what was in flight in the client's socket
// buffers, which the server counts as sent: there the bound is 2 times.
func TestResumeAfterReset(t *testing.T) {
	for fault, bound := range map[string]float64{"reset": 2, "truncate": 1.5} {
		t.Run(fault, func(t *testing.T) {
			srv := fetchtest.New()
			defer srv.Close()
			const size = 1_000_000
			path := "/f/r?size=1000000&" + fault + "=600000"
			res, dest := fetch(t, newFetcher(3), srv, path)
			if res.Status != download.Done || res.Attempts != 2 {
				t.Fatalf("got %s after %d attempts (%v)", res.Status, res.Attempts, res.Err)
			}
			wantBody(t, dest, fetchtest.Body("r", size))
			st := srv.URLStats(path)
			if st.Ranged != 1 || float64(st.Bytes) >= bound*size {
				t.Errorf("server: %d ranged requests, %d bytes sent; want 1 and < %.0f", st.Ranged, st.Bytes, bound*size)
			}
		})
	}
}

// A .part file left by one run is continued by the next.
func TestResumeAcrossRuns(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	dest := filepath.Join(t.TempDir(), "file")
	path := "/f/r?size=500000&truncate=200000"
	res := newFetcher(0).Fetch(context.Background(), srv.URL+path, "h", dest)
	if res.Status != download.Failed {
		t.Fatalf("first run: %s, want failed after the reset", res.Status)
	}
	if st, err := os.Stat(dest + ".part"); err != nil || st.Size() != 200000 {
		t.Fatalf("after the first run: .part %v, %v; want 200000 bytes kept", st, err)
	}
	if _, err := os.Stat(dest); err == nil {
		t.Fatal("a partial file is under its final name")
	}
	res = newFetcher(0).Fetch(context.Background(), srv.URL+path, "h", dest)
	if res.Status != download.Done || res.Bytes != 300000 {
		t.Fatalf("second run: %s with %d bytes (%v); want done with the last 300000", res.Status, res.Bytes, res.Err)
	}
	wantBody(t, dest, fetchtest.Body("r", 500000))
}

// A server that ignores Range, a resource that changed (its validator with
// it) and a resource without any validator all restart from zero: the old
// bytes are never glued to new ones.
func TestResumeRestarts(t *testing.T) {
	tests := []struct {
		name, path string
		ranged     int
		want       []byte
	}{
		{"no Range support", "/f/r?size=100000&reset=30000&norange=1", 1, fetchtest.Body("r", 100000)},
		{"changed resource", "/f/r?size=100000&reset=30000&etag=changing", 1, fetchtest.BodyVersion("r", 2, 100000)}, // request n gets version n
		{"no validator", "/f/r?size=100000&reset=30000&noetag=1&nolastmod=1", 0, fetchtest.Body("r", 100000)},
		{"Last-Modified only", "/f/r?size=100000&reset=30000&noetag=1", 1, fetchtest.Body("r", 100000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fetchtest.New()
			defer srv.Close()
			res, dest := fetch(t, newFetcher(2), srv, tt.path)
			if res.Status != download.Done {
				t.Fatalf("got %s (%v)", res.Status, res.Err)
			}
			wantBody(t, dest, tt.want)
			if got := srv.URLStats(tt.path).Ranged; got != tt.ranged {
				t.Errorf("%d ranged requests, want %d", got, tt.ranged)
			}
		})
	}
}

// partWith leaves a .part file of the given bytes with the resource's
// validator, as a run killed before its rename would.
func partWith(t *testing.T, srv *fetchtest.Server, path string, data []byte) string {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "file")
	leavePart(t, dest, data, etagOf(t, srv, path))
	srv.Reset()
	return dest
}

// etagOf returns the ETag of srv's path.
func etagOf(t *testing.T, srv *fetchtest.Server, path string) string {
	t.Helper()
	resp, err := http.Head(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("ETag")
}

// leavePart leaves dest's .part holding data, recorded with validator.
func leavePart(t *testing.T, dest string, data []byte, validator string) {
	t.Helper()
	if err := download.WritePart(dest, data, validator); err != nil {
		t.Fatal(err)
	}
}

// A 416 whose Content-Range size equals the .part size means the .part is
// whole (killed between the last byte and the rename): it is finished, not
// failed and not fetched again.
func Test416Finishes(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	path := "/f/w?size=5000"
	dest := partWith(t, srv, path, fetchtest.Body("w", 5000))
	res := newFetcher(0).Fetch(context.Background(), srv.URL+path, "h", dest)
	if res.Status != download.Done || res.HTTPStatus != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("got %s, HTTP %d (%v); want done after a 416", res.Status, res.HTTPStatus, res.Err)
	}
	wantBody(t, dest, fetchtest.Body("w", 5000))
	if srv.BytesSent() != 0 {
		t.Errorf("the server sent %d bytes, want 0", srv.BytesSent())
	}
}

// A 416 for a .part longer than the resource restarts it from zero.
func Test416Restarts(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	path := "/f/w?size=5000"
	dest := partWith(t, srv, path, append(fetchtest.Body("w", 5000), "junk"...))
	res := newFetcher(1).Fetch(context.Background(), srv.URL+path, "h", dest)
	if res.Status != download.Done || res.Attempts != 2 {
		t.Fatalf("got %s after %d attempts (%v); want done after a restart", res.Status, res.Attempts, res.Err)
	}
	wantBody(t, dest, fetchtest.Body("w", 5000))
}

// Transparent compression is off: a server that would gzip is not asked to,
// and the bytes on disk are the resource's.
func TestNoCompression(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	res, dest := fetch(t, newFetcher(0), srv, "/f/z?size=20000&gzip=1")
	if res.Status != download.Done {
		t.Fatalf("got %s (%v)", res.Status, res.Err)
	}
	wantBody(t, dest, fetchtest.Body("z", 20000))
}

// A stall longer than the stall timeout fails the attempt; the retry resumes.
func TestStallTimeout(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	f := newFetcher(2)
	f.StallTimeout = 200 * time.Millisecond
	path := "/f/s?size=300000&stall=100000"
	res, dest := fetch(t, f, srv, path)
	if res.Status != download.Done || res.Attempts != 2 {
		t.Fatalf("got %s after %d attempts (%v)", res.Status, res.Attempts, res.Err)
	}
	wantBody(t, dest, fetchtest.Body("s", 300000))
	if st := srv.URLStats(path); st.Ranged != 1 {
		t.Errorf("%d ranged requests, want 1", st.Ranged)
	}
}

// Retry-After is honoured, in seconds and as an HTTP date, and capped by
// MaxBackoff.
func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name, value string
		maxBackoff  time.Duration
		atLeast     time.Duration
	}{
		{"seconds", "1", time.Minute, time.Second},
		{"HTTP date", "DATE", time.Minute, time.Second},
		{"capped", "3600", 20 * time.Millisecond, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fetchtest.New()
			defer srv.Close()
			f := newFetcher(1)
			f.Backoff = time.Millisecond
			f.MaxBackoff = tt.maxBackoff
			start := time.Now()
			value := tt.value
			if value == "DATE" { // 3s ahead, at most 1s lost to the date's resolution
				value = url.QueryEscape(start.Add(3 * time.Second).UTC().Format(http.TimeFormat))
			}
			res, _ := fetch(t, f, srv, "/f/a?size=10&fail=1&status=429&retry-after="+value)
			if res.Status != download.Done || res.Attempts != 2 {
				t.Fatalf("got %s after %d attempts (%v)", res.Status, res.Attempts, res.Err)
			}
			// A lower bound only: the wait the server asked for was kept.
			if el := time.Since(start); el < tt.atLeast {
				t.Errorf("retried after %v; the server asked for %v", el, tt.atLeast)
			}
		})
	}
}

// An existing final file counts as done without a request; Force fetches it.
func TestExists(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	dest := filepath.Join(t.TempDir(), "file")
	os.WriteFile(dest, []byte("old"), 0o666)
	res := newFetcher(0).Fetch(context.Background(), srv.URL+"/f/a?size=10", "h", dest)
	if res.Status != download.Exists || srv.TotalRequests() != 0 {
		t.Fatalf("got %s with %d requests; want exists with none", res.Status, srv.TotalRequests())
	}
	f := newFetcher(0)
	f.Force = true
	if res := f.Fetch(context.Background(), srv.URL+"/f/a?size=10", "h", dest); res.Status != download.Done {
		t.Fatalf("with Force: %s (%v)", res.Status, res.Err)
	}
	wantBody(t, dest, fetchtest.Body("a", 10))
}

// Cancelling keeps the .part file and reports neither done nor failed.
func TestCancelKeepsPart(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	dest := filepath.Join(t.TempDir(), "file")
	ctx, cancel := context.WithCancel(context.Background())
	f := newFetcher(3)
	var got int64
	f.Progress = func(n int64) {
		if got += n; got >= 50000 {
			cancel()
		}
	}
	res := f.Fetch(ctx, srv.URL+"/f/c?size=400000&slow=400000", "h", dest)
	if res.Status != download.Canceled {
		t.Fatalf("got %s (%v), want canceled", res.Status, res.Err)
	}
	if st, err := os.Stat(dest + ".part"); err != nil || st.Size() == 0 {
		t.Fatalf(".part after cancel: %v %v", st, err)
	}
}

// Through toxiproxy, a connection that dies every 300 kB still delivers a
// 1 MB file: each retry resumes where the last one stopped.
func TestResumeThroughFlakyNetwork(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	proxy := fetchtest.StartProxy(t, srv)
	if _, err := proxy.LimitData(300_000); err != nil {
		t.Fatal(err)
	}
	f := newFetcher(10)
	dest := filepath.Join(t.TempDir(), "file")
	path := "/f/big?size=1000000"
	res := f.Fetch(context.Background(), proxy.URL+path, "h", dest)
	if res.Status != download.Done {
		t.Fatalf("got %s after %d attempts (%v)", res.Status, res.Attempts, res.Err)
	}
	wantBody(t, dest, fetchtest.Body("big", 1_000_000))
	// The proxy reads ahead of what it forwards, so count at the client:
	// every byte received was kept, none fetched twice.
	if st := srv.URLStats(path); res.Bytes != 1_000_000 || st.Ranged < 3 {
		t.Errorf("received %d bytes in %d ranged requests; want exactly 1 MB and at least 3 resumes", res.Bytes, st.Ranged)
	}
}

// TestOpenFilesCounted: OpenFiles (the files the Pool leaves descriptors
// for) counts each .part while it is open, and the directories the
// DirSyncer holds; once the downloads end, done, failed, resumed or cut,
// small (unnamed) or not, only those directories are left.
func TestOpenFilesCounted(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	f := newFetcher(2)
	seen := 0
	f.Progress = func(int64) { seen = max(seen, f.OpenFiles()) }
	dir := t.TempDir()
	for i, p := range []string{"/f/a?size=100", "/f/b?size=200000", "/status/404", "/f/c?size=100000&truncate=50000", "/f/d?size=100&reset=50", "/f/a?size=100"} {
		res := f.Fetch(context.Background(), srv.URL+p, "h", filepath.Join(dir, fmt.Sprint(i%5)))
		if (res.Status == download.Failed) != (p == "/status/404") {
			t.Fatalf("%s: %s (%v)", p, res.Status, res.Err)
		}
		if n, dirs := f.OpenFiles(), f.Dirs.(*durable.DirSyncer).Open(); n != dirs {
			t.Fatalf("after %s: OpenFiles %d; want the %d directories kept open, no file", p, n, dirs)
		}
	}
	if seen < 1 {
		t.Errorf("OpenFiles was at most %d while bytes came; want the file counted", seen)
	}
}

// TestRoomBeforeEachFile: Room (where ckfetch's pool closes an idle
// connection if the descriptors would pass its limit) is called before each
// file is opened, small (unnamed) or not, with that file already counted in
// OpenFiles: a file opened first and counted after would pass the limit
// until the next request ends.
func TestRoomBeforeEachFile(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	dir := t.TempDir()
	filesIn := func() int { // descriptors of files in dir (not of dir itself)
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd to count descriptors")
		}
		n := 0
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, dir+"/") {
				n++
			}
		}
		return n
	}
	f := newFetcher(0)
	rooms, early, uncounted := 0, 0, 0
	f.Room = func() {
		rooms++
		if filesIn() != 0 {
			early++
		}
		if f.OpenFiles()-f.Dirs.(*durable.DirSyncer).Open() != 1 {
			uncounted++
		}
	}
	paths := []string{"/f/small?size=100", "/f/big?size=200000", "/f/cut?size=100000&truncate=50000", "/f/cut?size=100000"}
	for _, p := range paths {
		name := strings.TrimPrefix(p[:strings.IndexByte(p, '?')], "/f/")
		res := f.Fetch(context.Background(), srv.URL+p, "h", filepath.Join(dir, name))
		if p == paths[2] {
			continue // cut: its .part stays for the next one to resume
		}
		if res.Status != download.Done {
			t.Fatalf("%s: %s (%v)", p, res.Status, res.Err)
		}
	}
	// small: 1 (unnamed); big: 1; cut: 1; resumed: the existing .part's open.
	if rooms < len(paths) {
		t.Errorf("Room called %d times for %d files opened; want once before each", rooms, len(paths))
	}
	if early != 0 || uncounted != 0 {
		t.Errorf("of %d calls of Room, %d came with the file already open and %d without it counted in OpenFiles; want 0 and 0", rooms, early, uncounted)
	}
}
