package download_test

// The unnamed .part of a small fresh download (an O_TMPFILE, see
// createPart): it is named when it holds bytes worth resuming, and its
// linkat never replaces a file another download made meanwhile.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ck-tools/ck/lib/download"
	"github.com/ck-tools/ck/lib/fetchtest"
)

// A small body cut short is resumed by the retry, from where it stopped:
// the unnamed .part got its name when the attempt ended, with its record.
func TestSmallTruncatedResumes(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	path := "/f/s?size=40000&truncate=25000"
	res, dest := fetch(t, newFetcher(2), srv, path)
	if res.Status != download.Done || res.Attempts != 2 {
		t.Fatalf("got %s after %d attempts (%v); want done after 2", res.Status, res.Attempts, res.Err)
	}
	wantBody(t, dest, fetchtest.Body("s", 40000))
	if st := srv.URLStats(path); st.Ranged != 1 || st.Bytes != 40000 {
		t.Errorf("server: %d ranged requests, %d bytes sent; want 1 ranged and the 40000 bytes once", st.Ranged, st.Bytes)
	}
}

// A run that ends after a small body was cut short leaves its bytes in a
// named .part, which the next run continues.
func TestSmallPartKeptAcrossRuns(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	dest := filepath.Join(t.TempDir(), "file")
	path := "/f/s?size=30000&truncate=10000"
	if res := newFetcher(0).Fetch(context.Background(), srv.URL+path, "h", dest); res.Status != download.Failed {
		t.Fatalf("first run: %s (%v); want failed on the truncated body", res.Status, res.Err)
	}
	if st, err := os.Stat(dest + ".part"); err != nil || st.Size() != 10000 {
		t.Fatalf("after the first run: .part %v, %v; want its 10000 bytes kept", st, err)
	}
	res := newFetcher(0).Fetch(context.Background(), srv.URL+path, "h", dest)
	if res.Status != download.Done || res.Bytes != 20000 {
		t.Fatalf("second run: %s with %d bytes (%v); want done with the last 20000", res.Status, res.Bytes, res.Err)
	}
	wantBody(t, dest, fetchtest.Body("s", 30000))
}

// A small body that fails for good without a validator to resume it by
// leaves nothing: no .part, no file.
func TestSmallFailureLeavesNothing(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5000")
		w.Write(fetchtest.Body("x", 1000)) // and the connection closes
	}))
	defer srv.Close()
	dir := t.TempDir()
	dest := filepath.Join(dir, "file")
	res := newFetcher(1).Fetch(context.Background(), srv.URL+"/x", "h", dest)
	if res.Status != download.Failed || res.Fatal || res.Err == nil {
		t.Fatalf("got %s, fatal=%v (%v); want an item failure on the cut body", res.Status, res.Fatal, res.Err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left in the output directory: %v; want nothing", ents)
	}
}

// Two small downloads of one path with different URLs at once: the one
// that ends first makes the file; the other, which ends later, finds it
// when it links its own and fails naming the first URL, leaving the first
// one's bytes and no .part.
func TestSamePathInFlightSmall(t *testing.T) {
	gate := make(chan struct{})
	bodyA, bodyB := fetchtest.Body("a", 1000), fetchtest.Body("b", 2000)
	started := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/a" {
			w.Header().Set("Content-Length", strconv.Itoa(len(bodyA)))
			w.Write(bodyA[:500])
			w.(http.Flusher).Flush()
			close(started)
			<-gate
			w.Write(bodyA[500:])
			return
		}
		w.Write(bodyB)
	}))
	defer srv.Close()
	dir := t.TempDir()
	dest := filepath.Join(dir, "same.bin")
	f := newFetcher(0)
	resA := make(chan download.Result, 1)
	go func() { resA <- f.Fetch(context.Background(), srv.URL+"/a", "h", dest) }()
	<-started
	if res := f.Fetch(context.Background(), srv.URL+"/b", "h", dest); res.Status != download.Done {
		t.Fatalf("second URL, ending first: %s (%v); want done", res.Status, res.Err)
	}
	close(gate)
	res := <-resA
	if res.Status != download.Failed || res.Fatal || res.Err == nil || !strings.Contains(res.Err.Error(), srv.URL+"/b") {
		t.Fatalf("first URL, ending second: %s, fatal=%v (%v); want an item failure naming %s", res.Status, res.Fatal, res.Err, srv.URL+"/b")
	}
	wantBody(t, dest, bodyB)
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("in the output directory: %v; want the one file", ents)
	}
}

// Two small downloads of one URL into one path at once: the one that ends
// second counts the file the first made as done.
func TestSameURLInFlightSmall(t *testing.T) {
	gate, started := make(chan struct{}), make(chan struct{}, 2)
	body := fetchtest.Body("u", 3000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:100])
		w.(http.Flusher).Flush()
		started <- struct{}{}
		<-gate
		w.Write(body[100:])
	}))
	defer srv.Close()
	dest := filepath.Join(t.TempDir(), "u.bin")
	f := newFetcher(0)
	results := make(chan download.Result, 2)
	for range 2 {
		go func() { results <- f.Fetch(context.Background(), srv.URL+"/u", "h", dest) }()
	}
	<-started
	<-started // both hold their bytes in an unnamed .part
	close(gate)
	got := map[download.Status]int{}
	for range 2 {
		res := <-results
		if res.Err != nil {
			t.Errorf("%s: %v", res.Status, res.Err)
		}
		got[res.Status]++
	}
	if got[download.Done] != 1 || got[download.Exists] != 1 {
		t.Errorf("statuses %v; want one done and one that found the file (exists)", got)
	}
	wantBody(t, dest, body)
}

// On a file system without O_TMPFILE the small file gets a named .part, as
// a large one does, after one refused open.
func TestSmallWithoutTmpfile(t *testing.T) {
	refused := download.RefuseTmpfile(t)
	srv := fetchtest.New()
	defer srv.Close()
	f := newFetcher(0)
	for _, name := range []string{"a", "b", "c"} {
		res, dest := fetch(t, f, srv, "/f/"+name+"?size=3000")
		if res.Status != download.Done {
			t.Fatalf("%s: %s (%v)", name, res.Status, res.Err)
		}
		wantBody(t, dest, fetchtest.Body(name, 3000))
	}
	if *refused != 1 {
		t.Errorf("%d O_TMPFILE opens refused; want 1, then named .part files only", *refused)
	}
}

// A kernel that refuses linkat's AT_EMPTY_PATH (before Linux 6.10, without
// CAP_DAC_READ_SEARCH: ENOENT) gets its small files linked through
// /proc/self/fd, after one refusal.
func TestSmallLinkWithoutEmptyPath(t *testing.T) {
	refused := download.RefuseEmptyPath(t)
	srv := fetchtest.New()
	defer srv.Close()
	f := newFetcher(0)
	for _, name := range []string{"a", "b", "c"} {
		res, dest := fetch(t, f, srv, "/f/"+name+"?size=3000")
		if res.Status != download.Done {
			t.Fatalf("%s: %s (%v)", name, res.Status, res.Err)
		}
		wantBody(t, dest, fetchtest.Body(name, 3000))
	}
	if *refused != 1 {
		t.Errorf("AT_EMPTY_PATH tried %d times; want once, then /proc/self/fd", *refused)
	}
}

// A small body cut short in a directory this run made leaves a named .part
// there; a later download of the same URL in the same run looks for it
// again (the directory is not fresh any more) and continues it.
func TestSmallPartInFreshDirResumed(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	root := t.TempDir()
	dest := filepath.Join(root, "new", "dir", "file")
	f := newFetcher(0)
	f.Root = root
	path := "/f/s?size=30000&truncate=10000"
	if res := f.Fetch(context.Background(), srv.URL+"/f/other?size=100", "h", filepath.Join(root, "new", "dir", "other")); res.Status != download.Done {
		t.Fatalf("a first file into the new directory: %s (%v)", res.Status, res.Err)
	}
	if res := f.Fetch(context.Background(), srv.URL+path, "h", dest); res.Status != download.Failed {
		t.Fatalf("first try: %s (%v); want failed on the truncated body", res.Status, res.Err)
	}
	if st, err := os.Stat(dest + ".part"); err != nil || st.Size() != 10000 {
		t.Fatalf("after the first try: .part %v, %v; want its 10000 bytes kept", st, err)
	}
	res := f.Fetch(context.Background(), srv.URL+path, "h", dest)
	if res.Status != download.Done || res.Bytes != 20000 {
		t.Fatalf("second try, same run: %s with %d bytes (%v); want done with the last 20000", res.Status, res.Bytes, res.Err)
	}
	wantBody(t, dest, fetchtest.Body("s", 30000))
}

// In a directory this run made, a download does not look at its final name
// before its request unless this run made that name (looksFirst): a
// duplicate line finds its file without a request, and a file another
// process put there is found by the link of the unnamed .part, which never
// replaces it. Another URL's file fails the line naming that URL, a file
// with no owner counts as done, a directory at the name fails as a clash;
// each leaves what was there as it was, and no .part.
func TestFreshDirFindsFinalAtLink(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	root := t.TempDir()
	f := newFetcher(0)
	f.Root = root
	dir := filepath.Join(root, "new")
	fetchOK := func(f *download.Fetcher, path, name string) {
		t.Helper()
		if res := f.Fetch(context.Background(), srv.URL+path, "h", filepath.Join(dir, name)); res.Status != download.Done {
			t.Fatalf("%s into new/%s: %s (%v)", path, name, res.Status, res.Err)
		}
	}
	requests := func(fn func()) int {
		before := srv.TotalRequests()
		fn()
		return srv.TotalRequests() - before
	}
	fetchOK(f, "/f/a?size=10", "a")
	if n := requests(func() {
		if res := f.Fetch(context.Background(), srv.URL+"/f/a?size=10", "h", filepath.Join(dir, "a")); res.Status != download.Exists || res.Err != nil {
			t.Fatalf("the same URL again: %s (%v); want exists", res.Status, res.Err)
		}
	}); n != 0 {
		t.Errorf("the same URL again made %d requests; want none", n)
	}

	other := newFetcher(0) // another process sharing the output
	other.Root = root
	fetchOK(other, "/f/b?size=20", "b")
	if n := requests(func() {
		res := f.Fetch(context.Background(), srv.URL+"/f/c?size=10", "h", filepath.Join(dir, "b"))
		if res.Status != download.Failed || res.Fatal || res.Err == nil || !strings.Contains(res.Err.Error(), srv.URL+"/f/b?size=20") {
			t.Fatalf("another URL for a name another process made: %s, fatal=%v (%v); want an item failure naming its URL", res.Status, res.Fatal, res.Err)
		}
	}); n != 1 {
		t.Errorf("another process's file was found after %d requests; want 1 (no look before it)", n)
	}
	wantBody(t, filepath.Join(dir, "b"), fetchtest.Body("b", 20))
	if err := os.WriteFile(filepath.Join(dir, "p"), []byte("the user's"), 0o666); err != nil {
		t.Fatal(err)
	}
	if res := f.Fetch(context.Background(), srv.URL+"/f/p?size=10", "h", filepath.Join(dir, "p")); res.Status != download.Exists || res.Err != nil {
		t.Fatalf("a file without an owner at the name: %s (%v); want exists", res.Status, res.Err)
	}
	wantBody(t, filepath.Join(dir, "p"), []byte("the user's"))

	fetchOK(f, "/f/c?size=10", "d/c")
	res := f.Fetch(context.Background(), srv.URL+"/f/d?size=10", "h", filepath.Join(dir, "d"))
	if res.Status != download.Failed || res.Fatal || res.Err == nil || !strings.Contains(res.Err.Error(), "is a directory") {
		t.Fatalf("a URL whose name is a directory: %s, fatal=%v (%v); want an item failure: a clash", res.Status, res.Fatal, res.Err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 4 {
		t.Errorf("in new/: %v; want a, b, p and d alone", ents)
	}
	wantBody(t, filepath.Join(dir, "a"), fetchtest.Body("a", 10))
}

// In a directory this run did not make, the final name is looked at first:
// a file there counts as done without a request.
func TestKnownDirLooksFirst(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "old"), 0o777); err != nil {
		t.Fatal(err)
	}
	f := newFetcher(0)
	f.Root = root
	dest := filepath.Join(root, "old", "a")
	if res := f.Fetch(context.Background(), srv.URL+"/f/a?size=10", "h", dest); res.Status != download.Done {
		t.Fatalf("first: %s (%v)", res.Status, res.Err)
	}
	before := srv.TotalRequests()
	if res := f.Fetch(context.Background(), srv.URL+"/f/a?size=10", "h", dest); res.Status != download.Exists || srv.TotalRequests() != before {
		t.Fatalf("the same URL again: %s (%v) with %d requests; want exists with none", res.Status, res.Err, srv.TotalRequests()-before)
	}
}
