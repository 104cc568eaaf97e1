package outname_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ck-tools/ck/lib/outname"
)

// FuzzTreeLayout checks the tree layout against refKey, a normaliser written
// apart from it: two URLs share a file if and only if they are equivalent
// (save the two documented cases, the scheme and index.html, which refKey
// folds too), and no name leaves the output directory. Each input gives two
// pairs: (u1, u2), and (u1, a mutation of u1 driven by ops), most of whose
// mutations keep the URL equivalent, so both answers are exercised. And a
// name is read back (decodeName) into the URL's reference key: names are
// unambiguous, so no two URLs of different keys can share one. The seed
// corpus is in testdata/fuzz/FuzzTreeLayout; scripts/test.sh runs it for a
// bounded time.
func FuzzTreeLayout(f *testing.F) {
	f.Add("https://example.org/with%20space/file%20name%2001.txt", "http://EXAMPLE.org:80/with space/file name 01.txt", []byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, u1, u2 string, ops []byte) {
		n1, err := outname.FromURL(u1)
		if err != nil {
			return
		}
		checkLocal(t, u1, n1)
		checkDecode(t, u1, n1)
		for _, v := range []string{u2, mutate(u1, ops)} {
			n, err := outname.FromURL(v)
			if err != nil {
				continue
			}
			checkLocal(t, v, n)
			checkDecode(t, v, n)
			k1, k := refKey(u1), refKey(v)
			if (n1 == n) != (k1 == k) {
				t.Errorf("%q -> %q\n%q -> %q\nreference keys %q and %q", u1, n1, v, n, k1, k)
			}
		}
	})
}

// checkLocal fails unless name is a relative path below the output
// directory whose every component a file system can hold and no temporary
// file can take.
func checkLocal(t *testing.T, u, name string) {
	t.Helper()
	if !filepath.IsLocal(name) || strings.HasPrefix(name, "/") {
		t.Errorf("%q -> %q: not local", u, name)
	}
	comps := strings.Split(name, "/")
	if len(comps) < 2 {
		t.Errorf("%q -> %q: no host directory", u, name)
	}
	for _, c := range comps {
		switch {
		case c == "" || c == "." || c == "..":
			t.Errorf("%q -> %q: component %q", u, name, c)
		case strings.IndexByte(c, 0) >= 0:
			t.Errorf("%q -> %q: NUL in a name", u, name)
		case len(c) > outname.MaxComponent:
			t.Errorf("%q -> %q: component of %d bytes, over %d", u, name, len(c), outname.MaxComponent)
		case strings.HasSuffix(c, outname.PartSuffix) || strings.Contains(c, outname.PartSuffix+"."):
			t.Errorf("%q -> %q: component %q looks temporary", u, name, c)
		}
	}
}

// checkDecode fails unless name, read back, gives the reference key of u
// (a name cut and given a digest cannot be read back: it is skipped).
func checkDecode(t *testing.T, u, name string) {
	t.Helper()
	if strings.Contains(name, "#") {
		return
	}
	key, err := decodeName(name)
	if want := refKey(u); err != nil || key != want {
		t.Errorf("%q -> %q, read back as %q, %v; want %q", u, name, key, err, want)
	}
}

// decodeName reads a tree name back into a reference key (see refKey): the
// host and port, and the path and query in their canonical form. Each %XX
// (upper-case hex) is the byte it stands for, or an escaped reserved
// character; "%2f" in the query is a '/' written as is; "%" alone is an
// empty segment.
func decodeName(name string) (string, error) {
	comps := strings.Split(name, "/")
	hostPort := comps[0]
	host, port := hostPort, ""
	if j := strings.LastIndexByte(hostPort, ':'); j >= 0 && !strings.Contains(hostPort[j:], "]") {
		host, port = hostPort[:j], hostPort[j+1:]
	}
	h, err := readBack(host, false)
	if err != nil {
		return "", err
	}
	h = decodeAll(h) // readBack keeps reserved characters escaped; a host has none escaped
	segs := comps[1:]
	last, query, hasQuery := strings.Cut(segs[len(segs)-1], "?")
	segs[len(segs)-1] = last
	p := ""
	for _, s := range segs {
		if s == "%" {
			p += "/"
			continue
		}
		c, err := readBack(s, false)
		if err != nil {
			return "", err
		}
		p += "/" + c
	}
	key := fmt.Sprintf("%q %q %q", h, port, p)
	if hasQuery {
		q, err := readBack(query, true)
		if err != nil {
			return "", err
		}
		key += " ?" + q
	}
	return key, nil
}

// readBack turns one name (or query) into the canonical form of canonical.
func readBack(s string, query bool) (string, error) {
	var raw strings.Builder // the URL text the name stands for
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			raw.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("a %% that starts no escape at %d", i)
		}
		esc := s[i+1 : i+3]
		i += 2
		switch {
		case query && esc == "2f":
			raw.WriteByte('/')
		case esc != strings.ToUpper(esc) || strings.Trim(esc, "0123456789ABCDEF") != "":
			return "", fmt.Errorf("not an escape: %%%s", esc)
		default:
			raw.WriteString("%" + esc)
		}
	}
	return canonical(raw.String()), nil
}

// refKey is the reference normaliser: the URL's identity after RFC 3986
// syntax- and scheme-based normalisation (scheme and host lower-cased, the
// hex digits of escapes upper-cased, escaped unreserved characters decoded,
// characters a URI cannot hold as they are percent-encoded, a default or
// empty port dropped, an empty path made "/"), without dot-segment removal,
// minus the scheme, userinfo and fragment, and with "index.html" after a
// trailing slash. It parses the URL by itself; it is only called on URLs
// that url.Parse accepts.
func refKey(raw string) string {
	i := strings.Index(raw, "://")
	scheme := strings.ToLower(raw[:i])
	rest := raw[i+3:]
	end := len(rest)
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		end = j
	}
	auth, rest := rest[:end], rest[end:]
	if j := strings.LastIndexByte(auth, '@'); j >= 0 {
		auth = auth[j+1:]
	}
	host, port := auth, ""
	if j := strings.LastIndexByte(auth, ':'); j >= 0 && !strings.Contains(auth[j:], "]") {
		host, port = auth[:j], auth[j+1:]
	}
	h := []byte(decodeAll(host))
	for i, c := range h {
		if 'A' <= c && c <= 'Z' {
			h[i] = c + 'a' - 'A'
		}
	}
	host = string(h)
	for len(port) > 1 && port[0] == '0' {
		port = port[1:]
	}
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		port = ""
	}
	rest, _, _ = strings.Cut(rest, "#")
	p, q, hasQuery := strings.Cut(rest, "?")
	p = canonical(p)
	if p == "" {
		p = "/"
	}
	if strings.HasSuffix(p, "/") {
		p += "index.html"
	}
	key := fmt.Sprintf("%q %q %q", host, port, p)
	if hasQuery {
		key += " ?" + canonical(q)
	}
	return key
}

// decodeAll percent-decodes every escape (a host holds valid ones only).
// Its result is kept apart from raw bytes by refKey's %q quoting.
func decodeAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+3], "%02x", &c); err == nil {
				b.WriteByte(c)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// canonical is the normal form of a path or query: unreserved characters as
// themselves, reserved ones in the form they were written in, every other
// byte (or a '%' that starts no escape) percent-encoded in upper case.
func canonical(s string) string {
	const unreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
	const reserved = ":/?#[]@!$&'()*+,;="
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) && strings.ContainsAny(s[i+1:i+2], "0123456789abcdefABCDEF") && strings.ContainsAny(s[i+2:i+3], "0123456789abcdefABCDEF") {
			var d byte
			fmt.Sscanf(s[i+1:i+3], "%02x", &d)
			i += 2
			if strings.IndexByte(unreserved, d) >= 0 {
				b.WriteByte(d)
			} else {
				fmt.Fprintf(&b, "%%%02X", d)
			}
			continue
		}
		if strings.IndexByte(unreserved, c) >= 0 || strings.IndexByte(reserved, c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// mutate rewrites u by the steps in ops, two bytes each (what, where): most
// keep it equivalent (hex case, escaping an unreserved or non-ASCII
// character, case of scheme and host, a default port, the scheme, a
// fragment, userinfo, index.html), some do not (decoding a reserved
// character, inserting one). The result may not parse: then it is skipped.
func mutate(u string, ops []byte) string {
	for len(ops) >= 2 {
		op, at := ops[0], int(ops[1])
		ops = ops[2:]
		i := strings.Index(u, "://")
		if i < 0 {
			return u
		}
		pathAt := len(u)
		if j := strings.IndexAny(u[i+3:], "/?#"); j >= 0 {
			pathAt = i + 3 + j
		}
		pos := pathAt
		if len(u) > pathAt {
			pos = pathAt + at%(len(u)-pathAt)
		}
		switch op % 12 {
		case 0: // the case of the hex digits of an escape
			if j := strings.IndexByte(u[pos:], '%'); j >= 0 && pos+j+3 <= len(u) {
				k := pos + j
				u = u[:k+1] + swapCase(u[k+1:k+3]) + u[k+3:]
			}
		case 1: // escape one byte of the path or query
			if pos < len(u) && u[pos] != '%' && u[pos] != '#' {
				u = fmt.Sprintf("%s%%%02x%s", u[:pos], u[pos], u[pos+1:])
			}
		case 2: // decode one escape
			if j := strings.IndexByte(u[pos:], '%'); j >= 0 && pos+j+3 <= len(u) {
				k := pos + j
				var c byte
				if _, err := fmt.Sscanf(u[k+1:k+3], "%02x", &c); err == nil {
					u = u[:k] + string([]byte{c}) + u[k+3:]
				}
			}
		case 3: // the case of the scheme and host
			u = swapCase(u[:pathAt]) + u[pathAt:]
		case 4: // a port, default or not
			port := []string{":80", ":443", ":", ":0080", ":8080"}[at%5]
			if !strings.Contains(u[i+3:pathAt], ":") || strings.HasSuffix(u[:pathAt], "]") {
				u = u[:pathAt] + port + u[pathAt:]
			}
		case 5: // the other scheme
			if strings.EqualFold(u[:i], "http") {
				u = "https" + u[i:]
			} else {
				u = "http" + u[i:]
			}
		case 6: // a fragment
			u += "#frag" + fmt.Sprint(at)
		case 7: // userinfo
			u = u[:i+3] + "user:pw@" + u[i+3:]
		case 8: // index.html after a trailing slash, or taken away
			p, q, hasQuery := strings.Cut(u[pathAt:], "?")
			switch {
			case strings.HasSuffix(p, "/index.html"):
				p = strings.TrimSuffix(p, "index.html")
			case strings.HasSuffix(p, "/"), p == "":
				p = strings.TrimSuffix(p, "/") + "/index.html"
			}
			if hasQuery {
				p += "?" + q
			}
			u = u[:pathAt] + p
		case 9: // a reserved character, or a slash, inserted
			c := ":/?[]@!$&'()*+,;=%"[at%18]
			u = u[:pos] + string([]byte{c}) + u[pos:]
		case 10: // a UTF-8 character, raw or escaped
			u = u[:pos] + []string{"ü", "%C3%BC", "%c3%bc", " ", "%20", "%2520", "%2F", "%00", "%FF"}[at%9] + u[pos:]
		case 11: // a dot segment, an empty one, or .part
			u = u[:pos] + []string{"/.", "/..", "/%2E", "/%2e%2E", "//", ".part", ".part.etag", ".part1"}[at%8] + u[pos:]
		}
	}
	return u
}

// swapCase swaps the case of ASCII letters, byte by byte.
func swapCase(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}
