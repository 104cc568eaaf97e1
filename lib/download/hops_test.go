package download_test

// Redirects followed one hop at a time (issue 8 item 5), and nothing made
// for a line before a response brings its bytes (item 1).

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ck-tools/ck/lib/download"
	"github.com/ck-tools/ck/lib/fetchtest"
)

// hostOf is the per-host key of a URL (host:port), as ckfetch keys it.
func hostOf(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ToLower(p.Host)
}

// slots is a BeforeAttempt that records the host of each request and how
// many slots were held at once.
type slots struct {
	mu       sync.Mutex
	hosts    []string
	held     int
	maxHeld  int
	released int
}

func (s *slots) acquire(ctx context.Context, host string) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hosts = append(s.hosts, host)
	s.held++
	s.maxHeld = max(s.maxHeld, s.held)
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.held--
			s.released++
		})
	}, nil
}

// to302 is the URL on a of a 302 to target.
func to302(a *fetchtest.Server, target string) string {
	return a.URL + "/status/302?location=" + url.QueryEscape(target)
}

// Each hop asks for the slot of the host it goes to, after the slot of the
// hop before it went back; the last hop's slot is held until the file is
// final, and FinalURL is the last hop's URL.
func TestHopsTakeTheirHostsSlot(t *testing.T) {
	a, b := fetchtest.New(), fetchtest.New()
	defer a.Close()
	defer b.Close()
	target := b.URL + "/f/t?size=100&redirect=1" // B redirects to itself once
	f := newFetcher(0)
	s := &slots{}
	f.BeforeAttempt = s.acquire
	dest := filepath.Join(t.TempDir(), "file")
	res := f.Fetch(context.Background(), to302(a, target), hostOf(t, a.URL), dest)
	if res.Status != download.Done {
		t.Fatalf("got %s (%v)", res.Status, res.Err)
	}
	wantBody(t, dest, fetchtest.Body("t", 100))
	if want := b.URL + "/f/t?size=100"; res.FinalURL != want {
		t.Errorf("FinalURL %q, want %q", res.FinalURL, want)
	}
	want := []string{hostOf(t, a.URL), hostOf(t, b.URL), hostOf(t, b.URL)}
	if !slices.Equal(s.hosts, want) || s.maxHeld != 1 || s.released != 3 {
		t.Errorf("slots asked for %v, at most %d held at once, %d released; want %v, 1, 3", s.hosts, s.maxHeld, s.released, want)
	}
	if a.TotalRequests() != 1 || b.TotalRequests() != 2 {
		t.Errorf("requests: %d to A, %d to B; want 1 and 2", a.TotalRequests(), b.TotalRequests())
	}
}

// A redirect that cannot be followed fails at once, whatever the retries:
// no Location, a malformed one, a scheme that is not http(s), a Location
// without a host. Its body is drained, and nothing is made for the file.
func TestBadRedirectFailsAtOnce(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	for _, tc := range []struct{ name, path, want string }{
		{"no Location", "/status/302", "without a Location"},
		{"malformed Location", "/status/301?location=" + url.QueryEscape("http://%zz/x"), "Location"},
		{"ftp", "/status/307?location=" + url.QueryEscape("ftp://127.0.0.1/x"), "unsupported protocol scheme"},
		{"no host", "/status/308?location=" + url.QueryEscape("http:///x"), "without a host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.Reset()
			dir := t.TempDir()
			dest := filepath.Join(dir, "sub", "file")
			res := newFetcher(3).Fetch(context.Background(), srv.URL+tc.path, "h", dest)
			if res.Status != download.Failed || res.Fatal || res.Attempts != 1 || srv.TotalRequests() != 1 {
				t.Fatalf("got %s (fatal %v) after %d attempts, %d requests (%v); want one failed attempt", res.Status, res.Fatal, res.Attempts, srv.TotalRequests(), res.Err)
			}
			if !strings.Contains(res.Err.Error(), tc.want) {
				t.Errorf("error %q, want it to mention %q", res.Err, tc.want)
			}
			wantNothingIn(t, dir)
		})
	}
}

// wantNothingIn fails unless dir is empty.
func wantNothingIn(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) > 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %v; want nothing", dir, names)
	}
}

// A .part resumes through a redirect to another host: every hop carries
// the Range and If-Range of the .part (any hop may be the one that answers
// with the content), and the answer's 206 brings only the rest.
func TestResumeThroughRedirect(t *testing.T) {
	a, b := fetchtest.New(), fetchtest.New()
	defer a.Close()
	defer b.Close()
	const size = 200000
	path := "/f/r?size=200000"
	body := fetchtest.Body("r", size)
	tag := etagOf(t, b, path)
	dest := filepath.Join(t.TempDir(), "file")
	leavePart(t, dest, body[:size/2], tag)
	b.Reset()
	res := newFetcher(0).Fetch(context.Background(), to302(a, b.URL+path), "h", dest)
	if res.Status != download.Done || res.Bytes != size/2 || res.HTTPStatus != 206 {
		t.Fatalf("got %s, HTTP %d with %d bytes (%v); want done by a 206 of the last %d", res.Status, res.HTTPStatus, res.Bytes, res.Err, size/2)
	}
	wantBody(t, dest, body)
	wantRange := "bytes=100000-"
	for name, srv := range map[string]*fetchtest.Server{"A": a, "B": b} {
		log := srv.Log()
		if len(log) != 1 || log[0].Range != wantRange || log[0].IfRange != tag {
			t.Errorf("%s got %+v; want one request with Range %q and If-Range %q", name, log, wantRange, tag)
		}
	}
}

// A line that fails before any response brings bytes (a 404, a 503 after
// its retries, a redirect to a 410, a refused connection) leaves no
// directory and no .part.
func TestNothingMadeWithoutBytes(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	refuser, err := fetchtest.Refusing()
	if err != nil {
		t.Fatal(err)
	}
	defer refuser.Close()
	refused := refuser.URL
	for _, u := range []string{
		srv.URL + "/status/404",
		srv.URL + "/f/x?size=10&fail=9",
		to302(srv, srv.URL+"/status/410"),
		refused + "/x",
	} {
		dir := t.TempDir()
		res := newFetcher(1).Fetch(context.Background(), u, "h", filepath.Join(dir, "host", "sub", "file"))
		if res.Status != download.Failed || res.Fatal {
			t.Errorf("%s: %s (fatal %v, %v); want a failure of the line", u, res.Status, res.Fatal, res.Err)
		}
		wantNothingIn(t, dir)
	}
}

// TestHeldSlotOfLastAttempt: with Options.Held, the slot of the last
// attempt is still held when FetchWith returns, done or failed, and the
// release is the caller's; a retried attempt's slot goes back before the
// next one asks. ckfetch's -j 1 order of results rests on it: a 404 whose
// slot went back before its result was in could be overtaken by the next
// line's.
func TestHeldSlotOfLastAttempt(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	for _, tc := range []struct {
		path     string
		status   download.Status
		attempts int
	}{
		{"/f/ok?size=10", download.Done, 1},
		{"/status/404", download.Failed, 1},
		{"/status/500", download.Failed, 3},
	} {
		f := newFetcher(2)
		s := &slots{}
		f.BeforeAttempt = s.acquire
		var held func()
		res := f.FetchWith(context.Background(), srv.URL+tc.path, hostOf(t, srv.URL), filepath.Join(t.TempDir(), "file"), download.Options{Held: &held})
		if res.Status != tc.status || res.Attempts != tc.attempts {
			t.Fatalf("%s: %s after %d attempts (%v); want %s after %d", tc.path, res.Status, res.Attempts, res.Err, tc.status, tc.attempts)
		}
		s.mu.Lock()
		h, rel, most := s.held, s.released, s.maxHeld
		s.mu.Unlock()
		if h != 1 || rel != tc.attempts-1 || most != 1 {
			t.Errorf("%s: on return %d slots held, %d given back, at most %d at once; want 1, %d, 1", tc.path, h, rel, most, tc.attempts-1)
		}
		held()
		if s.held != 0 {
			t.Errorf("%s: %d slots held after the caller's release; want 0", tc.path, s.held)
		}
	}
}
