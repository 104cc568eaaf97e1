package download

// What a request carries besides its URL: the user's headers, the
// User-Agent, credentials, and the pace at which its body is read.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/time/rate"
)

// originOnly are the headers from -H that are sent only to the origin of
// the input URL (its scheme, host and port), never after a redirect to
// another one, as curl does: they carry credentials.
var originOnly = []string{"Authorization", "Cookie"}

// reserved are the headers that ckfetch sets itself and -H may not: resume
// (Range, If-Range), the bytes on disk being the resource's
// (Accept-Encoding), and the framing of the connection.
var reserved = []string{"Range", "If-Range", "Accept-Encoding", "Content-Length", "Transfer-Encoding", "Connection", "Te", "Trailer", "Upgrade", "Keep-Alive"}

// ParseHeaders reads -H values, each "Name: value", into a Header for
// Fetcher.Header. A name given twice sends both values. "Name:" with
// nothing after it removes that header (-H 'User-Agent:' sends none), and
// "Name;" sends it with an empty value, as in curl. Its errors name the -H by
// its position and its name, never its value, which may be a secret.
func ParseHeaders(list []string) (http.Header, error) {
	h := http.Header{}
	for i, s := range list {
		which := fmt.Sprintf("-H number %d", i+1)
		name, value, found := strings.Cut(s, ":")
		empty := false // "Name;": sent with an empty value
		if !found {
			name, empty = strings.CutSuffix(strings.TrimSpace(s), ";")
			if !empty {
				return nil, fmt.Errorf("%s has no ':' after its name: write -H 'Name: value'", which)
			}
		}
		if !validName(name) {
			return nil, fmt.Errorf("%s: the part before ':' is not a header name (letters, digits and !#$%%&'*+-.^_`|~, no spaces): write -H 'Name: value'", which)
		}
		name = http.CanonicalHeaderKey(name)
		which = fmt.Sprintf("-H %s (number %d)", name, i+1)
		for _, r := range reserved {
			if name == r {
				return nil, fmt.Errorf("%s: ckfetch sets %s itself (resume and exact bytes depend on it)", which, name)
			}
		}
		value = strings.Trim(value, " \t")
		for j := 0; j < len(value); j++ {
			if c := value[j]; (c < ' ' && c != '\t') || c == 0x7f {
				return nil, fmt.Errorf("%s: the value holds a control character (a newline?)", which)
			}
		}
		if value == "" && !empty {
			h[name] = []string{} // removed
			continue
		}
		if name == "Host" && len(h[name]) > 0 {
			return nil, fmt.Errorf("%s: Host given twice", which)
		}
		h[name] = append(h[name], value)
	}
	return h, nil
}

// validName reports whether s is a header field name (an RFC 9110 token).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// setHeaders sets on req the headers that come from the user, for one
// request of a download whose input URL is origin: the first request, or
// any redirect hop (req.URL is then the hop's URL). It is the one place
// that decides which credentials go where:
//
//   - User-Agent is f.UserAgent (Go's default when it is ""); a -H
//     User-Agent replaces it.
//   - Every -H header (f.Header) is set, except that Authorization and
//     Cookie from -H, and a Host, go only to origin's scheme, host and port
//     (sameOrigin): a redirect to another one does not get them. A -H name
//     with no value (an empty slice) removes that header.
//   - Authorization, when -H does not give it for this URL: the user:password
//     of req.URL, or of origin on a hop to the same origin; a user name
//     without a password gets its password from the netrc entry of that
//     login; else the netrc entry of req.URL's host name (machine), or
//     f.Netrc's default entry for origin's own scheme, host and port alone,
//     so "default" credentials never follow a redirect to another host.
//   - Nothing else: Authorization and Cookie left by an earlier hop or by
//     net/http's redirect copier are removed first, and the headers of the
//     request itself (Range, If-Range, Accept-Encoding) are left alone.
//
// It may be called again on the same req, and gives the same result from
// whatever headers req had, so a redirect loop calls it for every hop.
func (f *Fetcher) setHeaders(req *http.Request, origin *url.URL) {
	same := sameOrigin(req.URL, origin)
	for _, name := range originOnly {
		delete(req.Header, name) // canonical already: Del would canonicalise it again
	}
	if f.UserAgent != "" {
		req.Header["User-Agent"] = []string{f.UserAgent}
	}
	if _, ok := f.Header["Host"]; ok {
		req.Host = ""
	}
	for name, values := range f.Header {
		switch {
		case !same && (name == "Host" || isOriginOnly(name)):
		case name == "Host":
			if len(values) > 0 {
				req.Host = values[0]
			}
		case len(values) == 0 && name == "User-Agent":
			req.Header["User-Agent"] = []string{""} // net/http then sends none
		case len(values) == 0:
			req.Header.Del(name)
		default:
			req.Header[name] = append([]string(nil), values...)
		}
	}
	if v := req.Header["Authorization"]; len(v) > 0 && v[0] != "" {
		return
	}
	user := req.URL.User
	if user == nil && same {
		user = origin.User
	}
	if user != nil {
		login := user.Username()
		password, ok := user.Password()
		if !ok {
			if _, p, found := f.Netrc.lookup(req.URL.Hostname(), login, same); found {
				password = p
			}
		}
		req.SetBasicAuth(login, password)
		return
	}
	if login, password, found := f.Netrc.lookup(req.URL.Hostname(), "", same); found {
		req.SetBasicAuth(login, password)
	}
}

func isOriginOnly(name string) bool {
	for _, n := range originOnly {
		if name == n {
			return true
		}
	}
	return false
}

// sameOrigin reports whether a and b have the same scheme, host and port
// (a missing port being the scheme's default): where credentials meant for
// b may go.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}

// maxBurst is the most body bytes a rate-limited read may take at once.
const maxBurst = 32 << 10

// NewRateLimit returns a limit of bytesPerSec body bytes per second for
// Fetcher.Rate, shared by every download of the Fetcher. Bytes are taken in
// reads of at most min(bytesPerSec, 32 KiB), so no wait is longer than a
// second for one download, and the limit holds over any second but the
// first (which may bring one read's worth more).
func NewRateLimit(bytesPerSec int64) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(bytesPerSec), int(max(1, min(bytesPerSec, maxBurst))))
}

// limit returns r read at f.Rate's pace (r itself without a limit): each
// read waits for its bytes' turn, so a slower reader makes TCP slow the
// sender down. The wait ends with ctx.
func (f *Fetcher) limit(ctx context.Context, r io.Reader) io.Reader {
	if f.Rate == nil {
		return r
	}
	return readerFunc(func(p []byte) (int, error) {
		if b := f.Rate.Burst(); len(p) > b {
			p = p[:b]
		}
		n, err := r.Read(p)
		if n > 0 {
			if werr := f.Rate.WaitN(ctx, n); werr != nil && err == nil {
				err = werr
			}
		}
		return n, err
	})
}

// cleanURL makes u sendable as written: the bytes a request line cannot
// carry (a space, a control character, a non-ASCII byte, and " < > \ ^ ` {
// | }) in its path and query are percent-encoded, as browsers and wget do,
// so that `?q=a b` asks for `?q=a%20b` instead of drawing a 400. Escapes
// already there are kept as written: net/http would otherwise rewrite a
// path it cannot send raw from its decoded form, turning `%3B` into `;`,
// another URL.
func cleanURL(u *url.URL) {
	raw := u.RawPath
	if raw == "" {
		raw = u.EscapedPath()
	}
	if p := escapeUnsendable(raw); p != u.EscapedPath() {
		if dec, err := url.PathUnescape(p); err == nil && dec == u.Path {
			u.RawPath = p
		}
	}
	u.RawQuery = escapeUnsendable(u.RawQuery)
}

// escapeUnsendable percent-encodes the bytes of s that cannot appear in a
// request target, leaving every other byte (and every %) as it is.
func escapeUnsendable(s string) string {
	const hex = "0123456789ABCDEF"
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > ' ' && c < 0x7f && !strings.ContainsRune("\"<>\\^`{|}", rune(c)) {
			if b != nil {
				b = append(b, c)
			}
			continue
		}
		if b == nil {
			b = append(make([]byte, 0, len(s)+8), s[:i]...)
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	if b == nil {
		return s
	}
	return string(b)
}
