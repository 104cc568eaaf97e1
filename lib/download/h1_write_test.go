package download

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// writeRequest writes every request the lean client takes (h1Request) as
// net/http's Request.Write does, byte for byte: hand-picked ones, then
// random headers, values and URLs.
func TestWriteRequestAsNetHTTP(t *testing.T) {
	var reqs []*http.Request
	add := func(method, raw string, set func(*http.Request)) {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		req := newGet(u)
		req.Method = method
		cleanURL(req.URL)
		if set != nil {
			set(req)
		}
		reqs = append(reqs, req)
	}
	add("GET", "http://127.0.0.1:8080/f/a", nil)
	add("GET", "http://example.org/", func(r *http.Request) { r.Header["User-Agent"] = []string{"ck/1"} })
	add("HEAD", "http://example.org:80/x?q=1&r=a%2Fb", func(r *http.Request) { r.Header["User-Agent"] = []string{""} })
	add("GET", "http://[::1]:9/p", func(r *http.Request) { r.Header["User-Agent"] = []string{"  "} })
	add("GET", "http://h:/p", nil) // an empty port
	add("GET", "http://h/with space/ü?q=a b", func(r *http.Request) { r.Header["User-Agent"] = nil })
	add("GET", "http://h/%3B;/x%2F", func(r *http.Request) {
		r.Host = "other.example:81"
		r.Header["Accept-Encoding"] = identity
		r.Header["Range"] = []string{"bytes=100-"}
		r.Header["If-Range"] = []string{`"etag-1"`}
		r.SetBasicAuth("user", "pa:ss")
	})
	add("GET", "http://user:pw@h/a", func(r *http.Request) {
		for i, name := range []string{"Z-Last", "A-First", "X-Many", "Cookie", "M-Mid", "B", "Y", "C", "D", "E"} {
			r.Header[name] = []string{" \tv" + strings.Repeat("x", i) + "\t ", "second  value"}
		}
		r.Header["Empty"] = []string{}
		r.Header["Blank"] = []string{""}
		r.Header["Host"] = []string{"ignored.example"}
		r.Header["Content-Length"] = []string{"3"}
	})
	rnd := rand.New(rand.NewPCG(1, 2))
	chars := "aZ09 -_.~:/?#[]@!$&'()*+,;=%\t\"<>\\^`{|}ü\x01\x7f"
	word := func(n int) string {
		var b strings.Builder
		for range rnd.IntN(n) {
			b.WriteByte(chars[rnd.IntN(len(chars))])
		}
		return b.String()
	}
	names := []string{"User-Agent", "Accept", "X-A", "X-b", "x-lower", "Authorization", "Range", "Host", "Trailer", "Transfer-Encoding", "Bad Name", "Connection"}
	for range 3000 {
		u := &url.URL{Scheme: "http", Host: []string{"h", "h:8080", "[::1]:1", "xn--bcher-kva.example", "a_b.example"}[rnd.IntN(5)],
			Path: "/" + word(12), RawQuery: word(8)}
		req := newGet(u)
		cleanURL(req.URL)
		for range rnd.IntN(6) {
			name := names[rnd.IntN(len(names))]
			vals := make([]string, rnd.IntN(3))
			for i := range vals {
				vals[i] = word(10)
			}
			req.Header[name] = vals
		}
		if rnd.IntN(4) == 0 {
			req.Host = u.Host
		}
		reqs = append(reqs, req)
	}
	sent := 0
	for _, req := range reqs {
		if !h1Request(req, nil) {
			continue
		}
		sent++
		var want, got bytes.Buffer
		wantErr := req.Write(&want)
		bw := bufio.NewWriter(&got)
		gotErr := writeRequest(bw, req)
		bw.Flush()
		if (wantErr != nil) != (gotErr != nil) || (wantErr == nil && got.String() != want.String()) {
			t.Fatalf("%s %s with headers %q:\nwrote %q (err %v)\nnet/http %q (err %v)", req.Method, req.URL, req.Header, got.String(), gotErr, want.String(), wantErr)
		}
	}
	if sent < 500 {
		t.Errorf("only %d of %d requests went through the lean client: the comparison covers too little", sent, len(reqs))
	}
}

// What the lean client does not send (net/http's Transport does): a body,
// a request that asks to close, a host that Request.Write would punycode or
// strip, a header value with a line break.
func TestH1RequestRefuses(t *testing.T) {
	get := func(raw string) *http.Request {
		u, _ := url.Parse(raw)
		return newGet(u)
	}
	cases := map[string]*http.Request{}
	r := get("http://h/")
	r.Close = true
	cases["Close"] = r
	cases["IDNA host"] = get("http://bücher.example/")
	cases["IPv6 zone"] = get("http://[fe80::1%25eth0]:80/")
	r = get("http://h/")
	r.ContentLength = 3
	cases["a body length"] = r
	r = get("http://h/")
	r.Header["X"] = []string{"a\r\nInjected: 1"}
	cases["a line break"] = r
	cases["https"] = get("https://h/")
	for name, req := range cases {
		if h1Request(req, nil) {
			t.Errorf("%s: the lean client takes it", name)
		}
	}
	if !h1Request(get("http://h:8080/a"), nil) {
		t.Error("a plain GET is refused")
	}
}
