package fetchtest_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/ck-tools/ck/lib/fetchtest"
)

// The log has when each request began and ended, and MaxActive how many
// were in flight at once.
func TestTimesAndMaxActive(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	c := srv.Client()
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b"} {
		wg.Go(func() { mustGet(t, c, srv.URL+"/f/"+name+"?size=10&delay=200ms") })
	}
	wg.Wait()
	mustGet(t, c, srv.URL+"/f/c?size=10")
	log := srv.Log()
	if len(log) != 3 {
		t.Fatalf("%d requests logged, want 3", len(log))
	}
	for _, r := range log {
		if r.Start.IsZero() || r.End.Before(r.Start) {
			t.Errorf("%s: start %v, end %v; want both, the end not before the start", r.URL, r.Start, r.End)
		}
	}
	if c := log[2]; c.Start.Before(log[0].End) || c.Start.Before(log[1].End) {
		t.Errorf("the third request started before the first two ended")
	}
	// Both delayed requests were in flight together: each waited 200 ms
	// after its start, and both had started before either ended.
	if got := srv.MaxActive(); got != 2 || !log[1].Start.Before(log[0].End) {
		t.Errorf("MaxActive %d, want 2", got)
	}
	if st := srv.Stats(false); st.MaxActive != 2 {
		t.Errorf("Stats.MaxActive %d, want 2", st.MaxActive)
	}
	srv.Reset()
	if got := srv.MaxActive(); got != 0 {
		t.Errorf("MaxActive after Reset: %d, want 0", got)
	}
}

// /status/CODE?location=L sends L as its Location header, as given.
func TestStatusLocation(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	// The transport, not a client: a client parses Location, and fails on
	// a malformed one.
	roundTrip := func(u string) *http.Response {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Transport.RoundTrip(req)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		resp.Body.Close()
		return resp
	}
	for _, loc := range []string{"http://example.invalid/x?a=1", "http://%zz/", "/f/a?size=1"} {
		resp := roundTrip(srv.URL + "/status/302?location=" + url.QueryEscape(loc))
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != loc {
			t.Errorf("location=%q: %d with Location %q; want 302 with it", loc, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	resp := roundTrip(srv.URL + "/status/302")
	if _, ok := resp.Header["Location"]; ok {
		t.Errorf("/status/302 has a Location %q; want none", resp.Header.Get("Location"))
	}
}

// A Refuser refuses connections while it is open.
func TestRefusing(t *testing.T) {
	r, err := fetchtest.Refusing()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for range 2 {
		_, err := http.Get(r.URL + "/x")
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("GET %s: %v; want connection refused", r.URL, err)
		}
	}
}
