package fetchtest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/fetchtest"
)

// get sends a GET with the given headers and returns the response and its
// whole body (or the error that ended it).
func get(t *testing.T, c *http.Client, url string, hdr ...string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func mustGet(t *testing.T, c *http.Client, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	resp, b, err := get(t, c, url, hdr...)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp, b
}

func TestBody(t *testing.T) {
	a := fetchtest.Body("a", 1000)
	if got := fetchtest.Body("a", 1000); !bytes.Equal(got, a) {
		t.Error("Body is not deterministic")
	}
	if got := fetchtest.Body("/f/a", 1000); !bytes.Equal(got, a) {
		t.Error(`Body("/f/a") differs from Body("a")`)
	}
	if got := fetchtest.Body("a", 333); !bytes.Equal(got, a[:333]) {
		t.Error("a shorter body is not a prefix of a longer one")
	}
	if bytes.Equal(fetchtest.Body("b", 1000), a) {
		t.Error("two names give the same body")
	}
	if bytes.Equal(fetchtest.BodyVersion("a", 1, 1000), a) {
		t.Error("version 1 equals version 0")
	}
	r := fetchtest.BodyReader("a", 1000)
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, a) {
		t.Errorf("BodyReader: err %v, equal %v", err, bytes.Equal(got, a))
	}
	part := make([]byte, 10)
	if _, err := r.ReadAt(part, 995); err != io.EOF || !bytes.Equal(part[:5], a[995:]) {
		t.Errorf("ReadAt at the end: err %v, got %x, want %x", err, part[:5], a[995:])
	}
}

func TestFull(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	resp, b := mustGet(t, srv.Client(), srv.URL+"/f/dir/x.bin?size=100000")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if !bytes.Equal(b, fetchtest.Body("dir/x.bin", 100000)) {
		t.Error("body differs from Body")
	}
	for _, h := range []string{"ETag", "Last-Modified", "Accept-Ranges"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	if tag := resp.Header.Get("ETag"); !strings.HasPrefix(tag, `"`) {
		t.Errorf("ETag %s is not strong", tag)
	}
	if resp.ContentLength != 100000 {
		t.Errorf("Content-Length %d, want 100000", resp.ContentLength)
	}
	_, b = mustGet(t, srv.Client(), srv.URL+"/f/dir/x.bin")
	if len(b) != fetchtest.DefaultSize {
		t.Errorf("no size: got %d bytes, want %d", len(b), fetchtest.DefaultSize)
	}
}

func TestRange(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	const u = "/f/r?size=100"
	body := fetchtest.Body("r", 100)
	resp, _ := mustGet(t, srv.Client(), srv.URL+u)
	tag, mod := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")

	tests := []struct {
		name      string
		url       string
		hdr       []string
		status    int
		from, to  int // expected body[from:to]
		contRange string
	}{
		{"middle", u, []string{"Range", "bytes=10-19"}, 206, 10, 20, "bytes 10-19/100"},
		{"open", u, []string{"Range", "bytes=90-"}, 206, 90, 100, "bytes 90-99/100"},
		{"suffix", u, []string{"Range", "bytes=-5"}, 206, 95, 100, "bytes 95-99/100"},
		{"past the end is clamped", u, []string{"Range", "bytes=95-500"}, 206, 95, 100, "bytes 95-99/100"},
		{"if-range etag matches", u, []string{"Range", "bytes=50-", "If-Range", tag}, 206, 50, 100, "bytes 50-99/100"},
		{"if-range date matches", u, []string{"Range", "bytes=50-", "If-Range", mod}, 206, 50, 100, "bytes 50-99/100"},
		{"if-range etag differs", u, []string{"Range", "bytes=50-", "If-Range", `"other"`}, 200, 0, 100, ""},
		{"if-range weak", u, []string{"Range", "bytes=50-", "If-Range", "W/" + tag}, 200, 0, 100, ""},
		{"if-range old date", u, []string{"Range", "bytes=50-", "If-Range", "Mon, 01 Jan 2001 00:00:00 GMT"}, 200, 0, 100, ""},
		{"unsatisfiable", u, []string{"Range", "bytes=100-"}, 416, 0, 0, "bytes */100"},
		{"several ranges ignored", u, []string{"Range", "bytes=0-1,5-6"}, 200, 0, 100, ""},
		{"bad syntax ignored", u, []string{"Range", "bytes=x-"}, 200, 0, 100, ""},
		{"norange", u + "&norange=1", []string{"Range", "bytes=10-19"}, 200, 0, 100, ""},
		{"empty body", "/f/r?size=0", []string{"Range", "bytes=0-"}, 416, 0, 0, "bytes */0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := mustGet(t, srv.Client(), srv.URL+tt.url, tt.hdr...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Content-Range"); got != tt.contRange {
				t.Errorf("Content-Range %q, want %q", got, tt.contRange)
			}
			if tt.status != 416 && !bytes.Equal(b, body[tt.from:tt.to]) {
				t.Errorf("body is not body[%d:%d] (got %d bytes)", tt.from, tt.to, len(b))
			}
		})
	}
	if got := srv.URLStats(u).Ranged; got != 12 {
		t.Errorf("ranged requests for %s: got %d, want 12", u, got)
	}
}

func TestIfRangeWithoutETag(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	u := srv.URL + "/f/n?size=100&noetag=1"
	resp, _ := mustGet(t, srv.Client(), u)
	if resp.Header.Get("ETag") != "" {
		t.Fatal("noetag=1 still sends an ETag")
	}
	resp, b := mustGet(t, srv.Client(), u, "Range", "bytes=60-", "If-Range", resp.Header.Get("Last-Modified"))
	if resp.StatusCode != 206 || len(b) != 40 {
		t.Errorf("If-Range by date: status %d with %d bytes, want 206 with 40", resp.StatusCode, len(b))
	}
	resp, _ = mustGet(t, srv.Client(), srv.URL+"/f/n?size=100&nolastmod=1")
	if resp.Header.Get("Last-Modified") != "" {
		t.Error("nolastmod=1 still sends Last-Modified")
	}
}

func TestFail(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	tests := []struct {
		name       string
		url        string
		status     int
		retryAfter string
	}{
		{"default 503", "/f/a?fail=2", 503, ""},
		{"429 with seconds", "/f/b?fail=2&status=429&retry-after=3", 429, "3"},
		{"503 with date", "/f/c?fail=2&retry-after=Wed,%2021%20Oct%202015%2007:28:00%20GMT", 503, "Wed, 21 Oct 2015 07:28:00 GMT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := 1; i <= 3; i++ {
				resp, b := mustGet(t, srv.Client(), srv.URL+tt.url)
				want := tt.status
				if i == 3 {
					want = 200
				}
				if resp.StatusCode != want {
					t.Fatalf("request %d: status %d, want %d", i, resp.StatusCode, want)
				}
				if i < 3 && resp.Header.Get("Retry-After") != tt.retryAfter {
					t.Errorf("request %d: Retry-After %q, want %q", i, resp.Header.Get("Retry-After"), tt.retryAfter)
				}
				if i == 3 && len(b) != fetchtest.DefaultSize {
					t.Errorf("request 3: %d bytes, want %d", len(b), fetchtest.DefaultSize)
				}
			}
			if got := srv.Requests(tt.url); got != 3 {
				t.Errorf("Requests: got %d, want 3", got)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	for _, code := range []int{200, 404, 418, 500} {
		resp, _ := mustGet(t, srv.Client(), srv.URL+"/status/"+strconv.Itoa(code))
		if resp.StatusCode != code {
			t.Errorf("/status/%d: got %d", code, resp.StatusCode)
		}
	}
	for _, u := range []string{"/status/99", "/status/x", "/f/a?bogus=1", "/f/a?size=-1", "/f/a?etag=fixed", "/f/a?stalldur=x"} {
		if resp, _ := mustGet(t, srv.Client(), srv.URL+u); resp.StatusCode != 400 {
			t.Errorf("%s: status %d, want 400", u, resp.StatusCode)
		}
	}
	if resp, _ := mustGet(t, srv.Client(), srv.URL+"/nothing"); resp.StatusCode != 404 {
		t.Errorf("/nothing: status %d, want 404", resp.StatusCode)
	}
}

func TestReset(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	const u = "/f/rst?size=100000&reset=1000&resets=2"
	body := fetchtest.Body("rst", 100000)
	for i := 1; i <= 2; i++ {
		resp, b, err := get(t, srv.Client(), srv.URL+u)
		if resp.ContentLength != 100000 {
			t.Errorf("request %d: Content-Length %d, want the full 100000", i, resp.ContentLength)
		}
		if err == nil {
			t.Fatalf("request %d: read %d bytes and no error, want a reset", i, len(b))
		}
		if len(b) > 1000 || !bytes.Equal(b, body[:len(b)]) {
			t.Errorf("request %d: got %d bytes, want a prefix of at most 1000", i, len(b))
		}
		t.Logf("request %d: %d bytes, %v", i, len(b), err)
	}
	if _, b := mustGet(t, srv.Client(), srv.URL+u); !bytes.Equal(b, body) {
		t.Error("request 3: body differs")
	}
	// A reset after a Range start counts from the start of the part.
	resp, b, err := get(t, srv.Client(), srv.URL+"/f/rst?size=100000&reset=10", "Range", "bytes=500-")
	if resp.StatusCode != 206 || err == nil || len(b) > 10 {
		t.Errorf("ranged reset: status %d, %d bytes, err %v", resp.StatusCode, len(b), err)
	}
}

func TestTruncate(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	_, b, err := get(t, srv.Client(), srv.URL+"/f/tr?size=5000&truncate=1234")
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("error %v, want an unexpected EOF", err)
	}
	if !bytes.Equal(b, fetchtest.Body("tr", 1234)) {
		t.Errorf("got %d bytes, want the first 1234", len(b))
	}
	if _, b := mustGet(t, srv.Client(), srv.URL+"/f/tr?size=5000&truncate=1234"); len(b) != 5000 {
		t.Errorf("second request: %d bytes, want 5000", len(b))
	}
}

// stalled starts a GET for u and returns its body after reading want bytes.
func stalled(t *testing.T, c *http.Client, url string, want int) (io.ReadCloser, []byte) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, want)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("read the first %d bytes: %v", want, err)
	}
	return resp.Body, first
}

func TestStallEndsOnClose(t *testing.T) {
	srv := fetchtest.New()
	body, first := stalled(t, srv.Client(), srv.URL+"/f/st?size=10000&stall=100", 100)
	defer body.Close()
	if !bytes.Equal(first, fetchtest.Body("st", 100)) {
		t.Error("the bytes before the stall differ")
	}
	done := make(chan []byte)
	go func() {
		rest, _ := io.ReadAll(body)
		done <- rest
	}()
	srv.Close() // must return although a request is stalled
	if rest := <-done; len(rest) != 0 {
		t.Errorf("got %d more bytes after the stall, want none", len(rest))
	}
}

func TestStallEndsWhenClientGoes(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/f/st?size=10000&stall=100", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 100))
	cancel()
	resp.Body.Close()
	// The handler ends: a graceful shutdown (which waits for handlers)
	// returns, with no Close to cancel the stall.
	if err := srv.Config.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestStallWithDuration(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	const u = "/f/sd?size=3000&stall=1000&stalldur=50ms&stalls=2"
	for i := 1; i <= 3; i++ {
		start := time.Now()
		_, b := mustGet(t, srv.Client(), srv.URL+u)
		took := time.Since(start)
		if !bytes.Equal(b, fetchtest.Body("sd", 3000)) {
			t.Errorf("request %d: body differs", i)
		}
		if i <= 2 && took < 50*time.Millisecond {
			t.Errorf("request %d took %v, want at least the 50ms stall", i, took)
		}
	}
}

func TestDelayAndSlow(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	start := time.Now()
	mustGet(t, srv.Client(), srv.URL+"/f/d?size=10&delay=80ms")
	if took := time.Since(start); took < 80*time.Millisecond {
		t.Errorf("delay=80ms took %v", took)
	}
	start = time.Now()
	_, b := mustGet(t, srv.Client(), srv.URL+"/f/s?size=4000&slow=20000")
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("4000 bytes at 20000 B/s took %v, want about 200ms", took)
	}
	if !bytes.Equal(b, fetchtest.Body("s", 4000)) {
		t.Error("slow body differs")
	}
}

func TestChangingETag(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	const u = "/f/ch?size=500&etag=changing"
	r1, b1 := mustGet(t, srv.Client(), srv.URL+u)
	r2, b2 := mustGet(t, srv.Client(), srv.URL+u, "Range", "bytes=100-", "If-Range", r1.Header.Get("ETag"))
	if r2.StatusCode != 200 {
		t.Errorf("resume against a changed resource: status %d, want 200", r2.StatusCode)
	}
	if r1.Header.Get("ETag") == r2.Header.Get("ETag") || r1.Header.Get("Last-Modified") == r2.Header.Get("Last-Modified") {
		t.Error("validators did not change")
	}
	if !bytes.Equal(b1, fetchtest.BodyVersion("ch", 1, 500)) || !bytes.Equal(b2, fetchtest.BodyVersion("ch", 2, 500)) {
		t.Error("bodies are not versions 1 and 2")
	}
	if bytes.Equal(b1, b2) {
		t.Error("body did not change")
	}
}

func TestRedirect(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	resp, b := mustGet(t, srv.Client(), srv.URL+"/f/rd?size=50&redirect=3")
	if resp.StatusCode != 200 || !bytes.Equal(b, fetchtest.Body("rd", 50)) {
		t.Errorf("status %d, body equal %v", resp.StatusCode, bytes.Equal(b, fetchtest.Body("rd", 50)))
	}
	if got := resp.Request.URL.RequestURI(); got != "/f/rd?size=50" {
		t.Errorf("final URL %s, want /f/rd?size=50", got)
	}
	for _, u := range []string{"/f/rd?size=50&redirect=3", "/f/rd?size=50&redirect=2", "/f/rd?size=50&redirect=1", "/f/rd?size=50"} {
		if got := srv.Requests(u); got != 1 {
			t.Errorf("Requests(%s) = %d, want 1", u, got)
		}
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ = mustGet(t, noFollow, srv.URL+"/f/rd?redirect=1&size=50")
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "/f/rd?size=50" {
		t.Errorf("status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestGzip(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	body := fetchtest.Body("gz", 3000)
	// Setting Accept-Encoding ourselves turns off the transport's
	// transparent decompression, as a downloader must.
	resp, b := mustGet(t, srv.Client(), srv.URL+"/f/gz?size=3000&gzip=1", "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.ContentLength != -1 {
		t.Fatalf("Content-Encoding %q, length %d", resp.Header.Get("Content-Encoding"), resp.ContentLength)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(plain, body) {
		t.Errorf("gunzipped body differs (err %v)", err)
	}
	tests := []struct{ name, url, accept string }{
		{"not asked by the URL", "/f/gz?size=3000", "gzip"},
		{"not accepted", "/f/gz?size=3000&gzip=1", "identity"},
		{"refused with q=0", "/f/gz?size=3000&gzip=1", "gzip;q=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := mustGet(t, srv.Client(), srv.URL+tt.url, "Accept-Encoding", tt.accept)
			if resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(b, body) {
				t.Errorf("Content-Encoding %q, body equal %v", resp.Header.Get("Content-Encoding"), bytes.Equal(b, body))
			}
		})
	}
}

func TestNoLength(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	for _, size := range []int64{10, 100000} {
		resp, b := mustGet(t, srv.Client(), srv.URL+"/f/nl?nolength=1&size="+strconv.Itoa(int(size)))
		if resp.ContentLength != -1 || len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
			t.Errorf("size %d: length %d, transfer encoding %v", size, resp.ContentLength, resp.TransferEncoding)
		}
		if !bytes.Equal(b, fetchtest.Body("nl", size)) {
			t.Errorf("size %d: body differs", size)
		}
	}
}

func TestHead(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	resp, err := srv.Client().Head(srv.URL + "/f/h?size=777")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != 777 || resp.Header.Get("ETag") == "" {
		t.Errorf("status %d, length %d, ETag %q", resp.StatusCode, resp.ContentLength, resp.Header.Get("ETag"))
	}
	if srv.BytesSent() != 0 {
		t.Errorf("HEAD counted %d body bytes", srv.BytesSent())
	}
}

func TestStats(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	c := srv.Client()
	mustGet(t, c, srv.URL+"/f/a?size=100")
	mustGet(t, c, srv.URL+"/f/a?size=100", "Range", "bytes=40-", "If-Range", `"x"`)
	mustGet(t, c, srv.URL+"/f/a?size=100", "Range", "bytes=40-")
	mustGet(t, c, srv.URL+"/f/b?size=7&fail=1")
	mustGet(t, c, srv.URL+"/f/b?size=7&fail=1")

	if got := srv.TotalRequests(); got != 5 {
		t.Errorf("TotalRequests %d, want 5", got)
	}
	if got := srv.Requests(srv.URL + "/f/a?size=100"); got != 3 {
		t.Errorf("Requests(a) %d, want 3", got)
	}
	if got := srv.BytesSent(); got != 100+100+60+7 {
		t.Errorf("BytesSent %d, want 267", got)
	}
	want := []fetchtest.Request{
		{Method: "GET", URL: "/f/a?size=100", Status: 200, Bytes: 100},
		{Method: "GET", URL: "/f/a?size=100", Range: "bytes=40-", IfRange: `"x"`, Status: 200, Bytes: 100},
		{Method: "GET", URL: "/f/a?size=100", Range: "bytes=40-", Status: 206, Bytes: 60},
		{Method: "GET", URL: "/f/b?size=7&fail=1", Status: 503},
		{Method: "GET", URL: "/f/b?size=7&fail=1", Status: 200, Bytes: 7},
	}
	log := srv.Log()
	if len(log) != len(want) {
		t.Fatalf("log has %d entries, want %d: %+v", len(log), len(want), log)
	}
	for i := range want {
		got := log[i]
		if got.Start.IsZero() || got.End.Before(got.Start) {
			t.Errorf("log[%d]: start %v, end %v; want both, in order", i, got.Start, got.End)
		}
		got.Start, got.End = want[i].Start, want[i].End // TestTimesAndMaxActive looks at them
		if got != want[i] {
			t.Errorf("log[%d] = %+v, want %+v", i, got, want[i])
		}
	}

	raw, err := fetchtest.StatsJSON(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var st fetchtest.Stats
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	wantURLs := map[string]fetchtest.URLStats{
		"/f/a?size=100":      {Requests: 3, Ranged: 2, Bytes: 260},
		"/f/b?size=7&fail=1": {Requests: 2, Bytes: 7},
	}
	if st.Requests != 5 || st.Bytes != 267 || len(st.URLs) != 2 || st.Log != nil {
		t.Errorf("stats %s", raw)
	}
	for k, v := range wantURLs {
		if st.URLs[k] != v {
			t.Errorf("stats of %s: %+v, want %+v", k, st.URLs[k], v)
		}
	}
	withLog, err := fetchtest.GetStats(srv.URL + "/_stats?log=1")
	if err != nil || len(withLog.Log) != 5 {
		t.Errorf("GetStats with log: %d entries, err %v", len(withLog.Log), err)
	}
	if srv.TotalRequests() != 5 {
		t.Errorf("the stats requests were counted: %d", srv.TotalRequests())
	}

	srv.Reset()
	if srv.TotalRequests() != 0 || srv.BytesSent() != 0 || len(srv.Log()) != 0 || srv.Requests("/f/a?size=100") != 0 {
		t.Error("Reset left counters")
	}
	// Reset re-arms fail=1.
	if resp, _ := mustGet(t, c, srv.URL+"/f/b?size=7&fail=1"); resp.StatusCode != 503 {
		t.Errorf("after Reset: status %d, want 503", resp.StatusCode)
	}
	if resp, _ := mustGet(t, c, srv.URL+"/_reset"); resp.StatusCode != 204 || srv.TotalRequests() != 0 {
		t.Errorf("/_reset: status %d, total %d", resp.StatusCode, srv.TotalRequests())
	}
}

func TestConcurrentCounting(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	const workers, each = 8, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				resp, err := srv.Client().Get(srv.URL + "/f/c?size=1000&tag=" + strconv.Itoa(w%2))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if got := srv.TotalRequests(); got != workers*each {
		t.Errorf("TotalRequests %d, want %d", got, workers*each)
	}
	if got := srv.BytesSent(); got != workers*each*1000 {
		t.Errorf("BytesSent %d, want %d", got, workers*each*1000)
	}
	if got := srv.Requests("/f/c?size=1000&tag=0"); got != workers*each/2 {
		t.Errorf("Requests(tag=0) %d, want %d", got, workers*each/2)
	}
}

func TestListen(t *testing.T) {
	srv, err := fetchtest.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Errorf("URL %s", srv.URL)
	}
	if _, b := mustGet(t, srv.Client(), srv.URL+"/f/l?size=10"); !bytes.Equal(b, fetchtest.Body("l", 10)) {
		t.Error("body differs")
	}
	if _, err := fetchtest.Listen(srv.Listener.Addr().String()); err == nil {
		t.Error("listening twice on one address did not fail")
	}
}

// short206=N: every ranged answer stops after N bytes and says so in an
// honest Content-Range; the whole body still comes in pieces.
func TestShort206(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	const u = "/f/s?size=100&short206=30"
	body := fetchtest.Body("s", 100)
	tests := []struct {
		rng, contRange string
		from, to       int
	}{
		{"bytes=10-", "bytes 10-39/100", 10, 40},
		{"bytes=80-", "bytes 80-99/100", 80, 100},
		{"bytes=0-9", "bytes 0-9/100", 0, 10},
	}
	for _, tt := range tests {
		resp, b := mustGet(t, srv.Client(), srv.URL+u, "Range", tt.rng)
		if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != tt.contRange || resp.ContentLength != int64(tt.to-tt.from) {
			t.Errorf("%s: status %d, Content-Range %q, length %d; want 206, %q, %d",
				tt.rng, resp.StatusCode, resp.Header.Get("Content-Range"), resp.ContentLength, tt.contRange, tt.to-tt.from)
		}
		if !bytes.Equal(b, body[tt.from:tt.to]) {
			t.Errorf("%s: body is not body[%d:%d]", tt.rng, tt.from, tt.to)
		}
	}
	if resp, b := mustGet(t, srv.Client(), srv.URL+u); resp.StatusCode != 200 || !bytes.Equal(b, body) {
		t.Errorf("no Range: status %d with %d bytes, want 200 with all 100", resp.StatusCode, len(b))
	}
	if resp, _ := mustGet(t, srv.Client(), srv.URL+"/f/s?short206=0"); resp.StatusCode != 400 {
		t.Errorf("short206=0: status %d, want 400", resp.StatusCode)
	}
}

// ignoreifrange=1 with etag=changing: a Range request whose If-Range names
// the old version gets a 206 of the new one, with the new ETag.
func TestIgnoreIfRange(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	for _, tt := range []struct {
		url    string
		status int
	}{
		{"/f/i?size=500&etag=changing", 200},
		{"/f/i?size=500&etag=changing&ignoreifrange=1", 206},
	} {
		r1, _ := mustGet(t, srv.Client(), srv.URL+tt.url)
		r2, b2 := mustGet(t, srv.Client(), srv.URL+tt.url, "Range", "bytes=100-", "If-Range", r1.Header.Get("ETag"))
		if r2.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d", tt.url, r2.StatusCode, tt.status)
		}
		if r2.Header.Get("ETag") == r1.Header.Get("ETag") {
			t.Errorf("%s: the second answer kept the ETag %s", tt.url, r1.Header.Get("ETag"))
		}
		from := 0
		if tt.status == 206 {
			from = 100
		}
		if !bytes.Equal(b2, fetchtest.BodyVersion("i", 2, 500)[from:]) {
			t.Errorf("%s: the second body is not version 2 from byte %d", tt.url, from)
		}
	}
}

// weaklastmod=1: no ETag, and Last-Modified equals Date.
func TestWeakLastModified(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	resp, b := mustGet(t, srv.Client(), srv.URL+"/f/w?size=50&weaklastmod=1")
	lm, date := resp.Header.Get("Last-Modified"), resp.Header.Get("Date")
	if resp.Header.Get("ETag") != "" || lm == "" || lm != date {
		t.Errorf("ETag %q, Last-Modified %q, Date %q; want no ETag and Last-Modified = Date",
			resp.Header.Get("ETag"), lm, date)
	}
	if !bytes.Equal(b, fetchtest.Body("w", 50)) {
		t.Error("the body is not Body(w, 50)")
	}
	resp, _ = mustGet(t, srv.Client(), srv.URL+"/f/w?size=50")
	if resp.Header.Get("Last-Modified") == resp.Header.Get("Date") {
		t.Error("without weaklastmod, Last-Modified equals Date")
	}
}

// Conns counts accepted connections: one kept-alive client uses one, a
// client that closes each connection uses one per request; Reset clears it.
func TestConns(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	keep := &http.Client{Transport: &http.Transport{}}
	for range 5 {
		mustGet(t, keep, srv.URL+"/f/a?size=10")
	}
	if got := srv.Conns(); got != 1 {
		t.Errorf("5 requests on a kept-alive client: %d connections, want 1", got)
	}
	srv.Reset()
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for range 5 {
		mustGet(t, fresh, srv.URL+"/f/a?size=10")
	}
	if got := srv.Conns(); got != 5 {
		t.Errorf("5 requests without keep-alive: %d connections, want 5", got)
	}
	st, err := fetchtest.GetStats(srv.URL)
	if err != nil || st.Conns < 5 {
		t.Errorf("/_stats conns %d (err %v), want at least 5", st.Conns, err)
	}
}
