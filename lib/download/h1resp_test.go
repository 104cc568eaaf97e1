package download

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/textproto"
	"reflect"
	"strings"
	"testing"
)

// readBoth reads raw as the answer to a GET with ReadResponse and with
// http.ReadResponse, each from a reader of its own that has buffered what
// the server sent (as exchange's Peek has), then each body in reads of
// step bytes, and what is left after it. It returns a description of the
// first difference, "" if none, and whether ReadResponse took its quick
// path.
func readBoth(raw string, step int) (diff string, quick bool) {
	req, _ := http.NewRequest(http.MethodGet, "http://example.com/f", nil)
	open := func() *bufio.Reader {
		br := bufio.NewReaderSize(strings.NewReader(raw), 64<<10)
		br.Peek(1)
		return br
	}
	qr, nr := open(), open()
	quick = quickResponse(qr, req) != nil
	qr = open() // again, through ReadResponse itself
	q, qerr := ReadResponse(qr, req)
	n, nerr := http.ReadResponse(nr, req)
	if (qerr == nil) != (nerr == nil) || (qerr != nil && qerr.Error() != nerr.Error()) {
		return fmt.Sprintf("error %v; net/http's %v", qerr, nerr), quick
	}
	if qerr != nil {
		return "", quick
	}
	type fields struct {
		Status               string
		StatusCode           int
		Proto                string
		ProtoMajor, ProtoMin int
		Header, Trailer      http.Header
		ContentLength        int64
		TransferEncoding     []string
		Close, Uncompressed  bool
		Request              *http.Request
		NoBody               bool
	}
	of := func(r *http.Response) fields {
		return fields{r.Status, r.StatusCode, r.Proto, r.ProtoMajor, r.ProtoMinor, r.Header, r.Trailer, r.ContentLength,
			r.TransferEncoding, r.Close, r.Uncompressed, r.Request, r.Body == http.NoBody}
	}
	if a, b := of(q), of(n); !reflect.DeepEqual(a, b) {
		return fmt.Sprintf("response %+v; net/http's %+v", a, b), quick
	}
	reads := func(body io.Reader, br *bufio.Reader) string {
		var sb strings.Builder
		p := make([]byte, step)
		for i := 0; i < 1000; i++ {
			k, err := body.Read(p)
			fmt.Fprintf(&sb, "%q %v|", p[:k], err)
			if err != nil && i > 0 && errors.Is(err, io.EOF) {
				// one more read after the end: it must say the same
				k, err = body.Read(p)
				fmt.Fprintf(&sb, "%q %v|", p[:k], err)
				break
			}
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
		}
		rest, _ := io.ReadAll(br)
		fmt.Fprintf(&sb, " then %q", rest)
		return sb.String()
	}
	if a, b := reads(q.Body, qr), reads(n.Body, nr); a != b {
		return fmt.Sprintf("body reads %s; net/http's %s", a, b), quick
	}
	return "", quick
}

// Heads as servers send them: each must take the quick path.
var serverHeads = []string{
	// nginx
	"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 07 Dec 2026 15:00:00 GMT\r\nContent-Type: application/octet-stream\r\n" +
		"Content-Length: 10\r\nLast-Modified: Mon, 07 Dec 2026 14:00:00 GMT\r\nConnection: keep-alive\r\nETag: \"6752f000-a\"\r\nAccept-Ranges: bytes\r\n\r\n",
	// Apache
	"HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 15:00:00 GMT\r\nServer: Apache/2.4.62 (Debian)\r\nLast-Modified: Mon, 07 Dec 2026 14:00:00 GMT\r\n" +
		"ETag: \"a-6752f000\"\r\nAccept-Ranges: bytes\r\nContent-Length: 10\r\nKeep-Alive: timeout=5, max=100\r\nConnection: Keep-Alive\r\n\r\n",
	// lighttpd
	"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nETag: \"3960873413\"\r\nLast-Modified: Mon, 07 Dec 2026 14:00:00 GMT\r\n" +
		"Content-Length: 10\r\nAccept-Ranges: bytes\r\nDate: Mon, 07 Dec 2026 15:00:00 GMT\r\nServer: lighttpd/1.4.69\r\n\r\n",
	// Go's net/http server, a 206 and a 404 of nginx
	"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Mon, 07 Dec 2026 15:00:00 GMT\r\n\r\n",
	"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-9/10\r\nContent-Length: 5\r\nETag: \"x\"\r\n\r\n",
	"HTTP/1.1 404 Not Found\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: 10\r\nConnection: keep-alive\r\n\r\n",
	"HTTP/1.1 302 Found\r\nLocation: http://example.com/g\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nContent-Length: 10\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
	"HTTP/1.1 200\r\nContent-Length: 10\r\nX-Empty:\r\nX-Spaces: \t a b \t\r\n\r\n",
	"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nWWW-Authenticate: Basic\r\nx-odd-NAME: 1\r\n\r\n", // canonicalised as net/http does
}

// TestQuickResponseAsNetHTTP: ReadResponse reads every answer as
// http.ReadResponse does (the Response, its body read for read, the bytes
// left after it), over the heads servers send (which must take the quick
// path: otherwise it saves nothing), hand-picked ones it must leave to
// net/http, and random ones built from both.
func TestQuickResponseAsNetHTTP(t *testing.T) {
	const body = "0123456789ABCDEF"
	for _, head := range serverHeads {
		for _, rest := range []string{body[:10], body, body[:4], ""} {
			diff, quick := readBoth(head+rest, 3)
			if diff != "" {
				t.Errorf("%q: %s", head+rest, diff)
			}
			if !quick {
				t.Errorf("%q: not taken by the quick path", head)
			}
		}
	}
	slow := []string{
		"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 9\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nPragma: no-cache\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTrailer: X\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length : 10\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n X: folded\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\nX: y\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 10\n\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX: caf\xc3\xa9\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX: a\x7fb\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\n",
		"HTTP/1.1  200 OK\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 2000 OK\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 20x OK\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n", // the head not yet whole
		"HTTP/1.1 200 OK\r\nX:\x01\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 200 OK\r\n: no name\r\nContent-Length: 10\r\n\r\n",
	}
	for _, raw := range slow {
		diff, quick := readBoth(raw+body, 4)
		if diff != "" {
			t.Errorf("%q: %s", raw, diff)
		}
		if quick {
			t.Errorf("%q: taken by the quick path; want it left to net/http", raw)
		}
	}

	rng := rand.New(rand.NewPCG(7, 11))
	// pick returns one of good, or one of bad once in eight.
	pick := func(good, bad []string) string {
		if rng.IntN(8) == 0 {
			return bad[rng.IntN(len(bad))]
		}
		return good[rng.IntN(len(good))]
	}
	statuses := []string{"HTTP/1.1 200 OK", "HTTP/1.1 206 Partial Content", "HTTP/1.1 404 Not Found", "HTTP/1.1 200",
		"HTTP/1.1 302 Found", "HTTP/1.1 500 x\ty", "HTTP/1.1 416 Range Not Satisfiable"}
	badStatuses := []string{"HTTP/1.0 200 OK", "HTTP/1.1 204 No Content", "HTTP/1.1 304 Not Modified", "HTTP/1.1 101 Switching",
		"HTTP/1.1 199 Odd", "HTTP/1.1 600 Odd", "HTTP/2 200", "http/1.1 200 OK", "HTTP/1.1 200 \x80", "HTTP/1.1 +20 OK", "HTTP/1.1 200OK"}
	names := []string{"ETag", "Date", "X-A", "Content-Type", "Connection", "Accept-Ranges", "Set-Cookie", "etag", "X-a",
		"X_A", "X.A-1", "Www-Authenticate", "WWW-Authenticate", "Content-Range", "Location", "Keep-Alive", "X--Y", "9x", "-X"}
	badNames := []string{"Transfer-Encoding", "Pragma", "Trailer", "Content-Length", "X A", "", "X\x00", "Ünï", "X:Y", " X"}
	values := []string{"10", "5", "0", "", " 10 ", "\t10", "010", "1 0", "-1", "keep-alive", "Keep-Alive", "a=1",
		"bytes 0-9/10", "\"v1\"", " ", "a  b", "\tx\t"}
	badValues := []string{"close", "chunked", "identity", "no-cache", "x\x80y", "x\x7fy", "x\ry", "x\ny", "x\x00"}
	crlf := []string{"\r\n"}
	ends := []string{"\n", "\r\r\n", "\r"}
	quicks := 0
	for i := range 10000 {
		var b strings.Builder
		b.WriteString(pick(statuses, badStatuses))
		b.WriteString(pick(crlf, ends))
		for range rng.IntN(8) {
			if rng.IntN(40) == 0 {
				b.WriteString(" folded")
			} else {
				b.WriteString(pick(names, badNames))
				b.WriteString(pick([]string{": ", ":", ":\t", ":  "}, []string{" : ", " :"}))
				b.WriteString(pick(values, badValues))
			}
			b.WriteString(pick(crlf, ends))
		}
		if rng.IntN(8) != 0 {
			b.WriteString("Content-Length: " + pick([]string{"10", "0", "16", "3"}, []string{"", "x", "1 0", "-1", "99999999999999999999"}) + "\r\n")
		}
		b.WriteString(pick(crlf, ends))
		b.WriteString(body[:rng.IntN(len(body)+1)])
		raw := b.String()
		diff, quick := readBoth(raw, 1+i%7)
		if diff != "" {
			t.Fatalf("random answer %d %q: %s", i, raw, diff)
		}
		if quick {
			quicks++
		}
	}
	t.Logf("10000 random answers: %d by the quick path", quicks)
	if quicks < 1000 {
		t.Errorf("only %d of 10000 random answers took the quick path: the comparison no longer tests it", quicks)
	}
}

// FuzzQuickResponse: for any bytes a server sends, ReadResponse reads them
// as http.ReadResponse does (see readBoth). scripts/test.sh fuzzes it for a
// few seconds past the seeds: the server heads, and heads the quick path
// must leave alone.
func FuzzQuickResponse(f *testing.F) {
	for _, head := range serverHeads {
		f.Add(head+"0123456789", uint8(3))
		f.Add(strings.Replace(head, "\r\n", "\n", 1)+"0123", uint8(1))
	}
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n0\r\n\r\n", uint8(2))
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 10\r\n\r\n0123456789", uint8(4))
	f.Fuzz(func(t *testing.T, raw string, step uint8) {
		if diff, _ := readBoth(raw, 1+int(step%16)); diff != "" {
			t.Errorf("%q: %s", raw, diff)
		}
	})
}

// TestCanonicalNameAllocs: a header name already canonical, or one of
// commonNames in another case, is named without an allocation; each is
// what textproto makes of it.
func TestCanonicalNameAllocs(t *testing.T) {
	for _, name := range []string{"Content-Length", "ETag", "etag", "content-type", "WWW-Authenticate", "x-amz-request-id"} {
		got, ok := canonicalName(name)
		if want := textproto.CanonicalMIMEHeaderKey(name); !ok || got != want {
			t.Errorf("canonicalName(%q) = %q, %v; want %q", name, got, ok, want)
		}
		if n := testing.AllocsPerRun(100, func() { canonicalName(name) }); n != 0 {
			t.Errorf("canonicalName(%q): %v allocations; want none", name, n)
		}
	}
}
