package download

// The lean client's reading of an answer's head: the shape nearly every
// file server sends (nginx, Apache, lighttpd, S3 and CDNs alike) is parsed
// here in one pass over bytes already received, and everything else by
// http.ReadResponse, net/http's own parser.

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
)

// ReadResponse reads the answer to req from br as http.ReadResponse does,
// and is what the lean client reads answers with (barefetch, the small-file
// benchmark's floor, too). quickResponse takes the answers whose parse by
// http.ReadResponse it knows to the byte (TestQuickResponseAsNetHTTP
// compares the two over hand-picked and random answers); for any other it
// leaves br as it was and http.ReadResponse reads it.
func ReadResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	if br.Buffered() == 0 {
		br.Peek(1) // what the server has sent so far; an error is ReadResponse's to report
	}
	if resp := quickResponse(br, req); resp != nil {
		return resp, nil
	}
	return http.ReadResponse(br, req)
}

// quickResponse parses the answer at the start of br's buffer, and consumes
// its head, when it is the common shape: the answer to a GET, its whole
// head already buffered, the status line "HTTP/1.1 NNN reason" with a
// final status that allows a body (200–599 but 204 and 304), every line
// ending in CRLF, header names of token characters, values of printable
// ASCII and tabs, one Content-Length of digits, and none of the fields
// net/http's parse would act on besides it (Transfer-Encoding, Trailer,
// Pragma; Connection only as "keep-alive").
// It returns nil, and consumes nothing, for any other answer. The Response
// is the one http.ReadResponse would make, with one string for the whole
// head where net/http makes one per value: net/http's parse was a sixth of
// ckfetch's user CPU on small files.
func quickResponse(br *bufio.Reader, req *http.Request) *http.Response {
	if req.Method != http.MethodGet {
		return nil
	}
	buf, _ := br.Peek(br.Buffered())
	end := indexHeadEnd(buf)
	if end < 0 {
		return nil
	}
	resp := parseHead(string(buf[:end+2]), req) // each line with its CRLF
	if resp == nil {
		return nil
	}
	br.Discard(end + 4)
	if resp.ContentLength == 0 {
		resp.Body = http.NoBody
	} else {
		resp.Body = &lengthBody{r: br, n: resp.ContentLength}
	}
	return resp
}

// indexHeadEnd returns the index of the CRLF CRLF that ends a head in b, or
// -1.
func indexHeadEnd(b []byte) int { return bytes.Index(b, []byte("\r\n\r\n")) }

// parseHead parses head, a status line and header lines each ending in
// CRLF, into a Response without a body; nil if it is not the shape
// quickResponse takes.
func parseHead(head string, req *http.Request) *http.Response {
	status, rest, ok := nextLine(head)
	if !ok {
		return nil
	}
	code, ok := statusLine(status)
	if !ok {
		return nil
	}
	n := strings.Count(rest, "\n")
	h := make(http.Header, n)
	values := make([]string, n) // one backing array for the values, as net/http's
	length, lengths, connections := int64(-1), 0, 0
	for rest != "" {
		var line string
		if line, rest, ok = nextLine(rest); !ok {
			return nil
		}
		name, value, ok := field(line)
		if !ok {
			return nil
		}
		switch name {
		case "Transfer-Encoding", "Trailer", "Pragma":
			return nil
		case "Content-Length":
			if lengths++; lengths > 1 {
				return nil
			}
			if length, ok = contentLength(value); !ok {
				return nil
			}
		case "Connection":
			if connections++; connections > 1 || !strings.EqualFold(value, "keep-alive") {
				return nil
			}
		}
		if vv := h[name]; vv != nil {
			h[name] = append(vv, value)
		} else {
			vv, values = values[:1:1], values[1:]
			vv[0] = value
			h[name] = vv
		}
	}
	if length < 0 {
		return nil
	}
	return &http.Response{Status: status[len("HTTP/1.1 "):], StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, ContentLength: length, Request: req}
}

// nextLine cuts s after its first LF: the line before it, without its CR,
// and the rest. ok is false if that LF has no CR before it (a bare LF).
func nextLine(s string) (line, rest string, ok bool) {
	i := strings.IndexByte(s, '\n')
	if i < 1 || s[i-1] != '\r' {
		return "", "", false
	}
	return s[:i-1], s[i+1:], true
}

// statusLine returns the code of a status line "HTTP/1.1 NNN" or "HTTP/1.1
// NNN reason" (printable ASCII and tabs) whose code is final and allows a
// body.
func statusLine(line string) (int, bool) {
	if len(line) < 12 || line[:9] != "HTTP/1.1 " {
		return 0, false
	}
	code := 0
	for _, c := range []byte(line[9:12]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code > 599 || code == http.StatusNoContent || code == http.StatusNotModified {
		return 0, false
	}
	if len(line) > 12 && (line[12] != ' ' || !printable(line[13:])) {
		return 0, false
	}
	return code, true
}

// field splits a header line "Name: value" whose name is a token and whose
// value is printable ASCII and tabs: the name in net/http's canonical form,
// the value without the spaces and tabs around it.
func field(line string) (name, value string, ok bool) {
	name, value, ok = strings.Cut(line, ":")
	if !ok || !printable(value) {
		return "", "", false
	}
	if name, ok = canonicalName(name); !ok {
		return "", "", false
	}
	return name, trimSpaceTab(value), true
}

// canonicalName returns s, a non-empty header name of token characters, as
// textproto.CanonicalMIMEHeaderKey writes it: each letter upper case at the
// start and after a hyphen, lower case elsewhere. A name servers send in
// another case (ETag, WWW-Authenticate) costs no allocation when it is one
// of commonNames.
func canonicalName(s string) (string, bool) {
	if s == "" || len(s) > 64 {
		return "", false
	}
	var buf [64]byte
	b := buf[:len(s)]
	same, upper := true, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z':
			if upper {
				c -= 'a' - 'A'
			}
		case 'A' <= c && c <= 'Z':
			if !upper {
				c += 'a' - 'A'
			}
		case '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return "", false
		}
		same = same && c == s[i]
		b[i] = c
		upper = c == '-'
	}
	if same {
		return s, true
	}
	if name, ok := commonNames[string(b)]; ok {
		return name, true
	}
	return string(b), true
}

// commonNames are the canonical forms of the header names file servers
// send, for the answers that spell them otherwise (ETag, WWW-Authenticate,
// Content-MD5; all in lower case, as envoy and S3's x-amz-* do).
var commonNames = func() map[string]string {
	m := map[string]string{}
	for _, name := range []string{"Accept-Ranges", "Age", "Cache-Control", "Connection", "Content-Disposition",
		"Content-Encoding", "Content-Length", "Content-Md5", "Content-Range", "Content-Type", "Date", "Etag", "Expires",
		"Keep-Alive", "Last-Modified", "Location", "Retry-After", "Server", "Set-Cookie", "Vary", "Www-Authenticate",
		"X-Amz-Id-2", "X-Amz-Request-Id"} {
		m[name] = name
	}
	return m
}()

// trimSpaceTab returns s without the spaces and tabs at its ends.
func trimSpaceTab(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// printable reports whether s is printable ASCII and tabs only.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c > '~' {
			return false
		}
	}
	return true
}

// contentLength parses a Content-Length of 1 to 18 digits (strconv.ParseUint's
// base 10, 63 bits, without its range check).
func contentLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// lengthBody is a body of n bytes from r, read as net/http reads one of a
// Content-Length: io.EOF with its last bytes, io.ErrUnexpectedEOF for an
// end before them, and io.EOF from then on.
type lengthBody struct {
	r      io.Reader
	n      int64 // bytes left
	sawEOF bool
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.sawEOF || b.n <= 0 {
		b.sawEOF = true
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	switch {
	case err == io.EOF:
		b.sawEOF = true
		if b.n > 0 {
			err = io.ErrUnexpectedEOF
		}
	case err == nil && n > 0 && b.n == 0:
		b.sawEOF = true
		err = io.EOF
	}
	return n, err
}

func (b *lengthBody) Close() error { return nil }
