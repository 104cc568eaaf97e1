package outname

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/zeebo/xxh3"
)

// treeName returns the tree-layout name of rawURL: HOST[:PORT]/SEG/.../FILE.
func treeName(u *url.URL, rest string) (string, error) {
	host, err := treeHost(u)
	if err != nil {
		return "", err
	}
	p, query, hasQuery := strings.Cut(rest, "?")
	if p == "" {
		p = "/" // http://h is http://h/
	}
	var b strings.Builder
	b.WriteString(host)
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		last := i == len(segs)-1
		var name string
		switch {
		case s == "" && last:
			name = "index.html"
		case s == "":
			name = emptySegment
		default:
			name = escapeText(s)
			if name == "." || name == ".." {
				name = strings.Repeat("%2E", len(name))
			}
		}
		if last && hasQuery {
			name += "?" + escapeText(query)
		}
		b.WriteByte('/')
		b.WriteString(component(name))
	}
	return b.String(), nil
}

// emptySegment names the empty segment of a path such as /a//b: a '%' that
// is the whole name starts no escape, so no other segment is named so.
const emptySegment = "%"

// longMark separates a cut name from the digest of the whole. A '#' is
// never part of a short name: in a URL it starts the fragment, and an
// escaped one stays %23.
const longMark = '#'

// treeHost is the host component: the host (as url.Parse decoded it) with
// its ASCII letters lower-cased, and ":PORT" for a port that is not the
// scheme's default (leading zeros dropped, an empty port ignored).
func treeHost(u *url.URL) (string, error) {
	h, port := u.Host, ""
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h, port = h[:i], h[i+1:]
	}
	if h == "" {
		return "", errors.New("invalid URL: no host")
	}
	if port != "" {
		port = strings.TrimLeft(port, "0")
		if port == "" {
			port = "0"
		}
		if scheme := strings.ToLower(u.Scheme); scheme == "http" && port == "80" || scheme == "https" && port == "443" {
			port = ""
		}
	}
	name := h
	if !plainName(h) || strings.ContainsFunc(h, func(r rune) bool { return 'A' <= r && r <= 'Z' }) {
		lower := []byte(h)
		for i, c := range lower {
			if 'A' <= c && c <= 'Z' {
				lower[i] = c + 'a' - 'A'
			}
		}
		name = escapeBytes(string(lower), nil)
	}
	if name == "." || name == ".." {
		name = strings.Repeat("%2E", len(name))
	}
	if port != "" {
		name += ":" + port
	}
	return component(name), nil
}

// Bytes of a path segment or query, by what RFC 3986 says of them.
const (
	plain    = iota // an unreserved byte, or one a URI cannot hold as is: the byte it stands for
	reserved        // a reserved character written as is: a delimiter, not data
	escaped         // a reserved character written %XX: data, not a delimiter
)

// escapeText turns a path segment or a query as written in a URL into a
// name: each byte is the byte it stands for, except that a reserved
// character keeps the form it was written in (";" and "%3B" are different
// URLs: ";" stays ";" and "%3B" stays "%3B"), and what escapeBytes escapes.
// In a query, a '/' written as is becomes "%2f", the one lower-case escape,
// since "%2F" is the name of a "%2F" of the URL. A '%' that starts no valid
// escape (only a query can hold one: url.Parse refuses it in a path) stands
// for itself.
func escapeText(s string) string {
	if plainName(s) {
		return s // nothing to decode or escape: no allocation per segment of a common URL
	}
	vals := make([]byte, 0, len(s))
	kinds := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c, kind := s[i], byte(plain)
		if c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			c = unhex(s[i+1])<<4 | unhex(s[i+2])
			if isReserved(c) {
				kind = escaped
			}
			i += 3
		} else {
			if isReserved(c) {
				kind = reserved
			}
			i++
		}
		vals, kinds = append(vals, c), append(kinds, kind)
	}
	return escapeBytes(string(vals), kinds)
}

// plainName reports whether s is printable ASCII without '%' and '/':
// escapeText and escapeBytes give it back as it is (TestPlainName).
func plainName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '%' || c == '/' {
			return false
		}
	}
	return true
}

// escapeBytes writes the bytes of s as they are, except what a name cannot
// hold or a reader could not see, as %XX: '%' itself (it starts escapes),
// NUL and '/' (a file system cannot hold them), control characters (C0, DEL,
// C1) and bytes that are not part of valid UTF-8. kinds, if not nil, tells
// the reserved characters of s (see escapeText): an escaped one is written
// %XX, one written as is stays as is, except a '/' (of a query), "%2f".
func escapeBytes(s string, kinds []byte) string {
	var b strings.Builder
	b.Grow(len(s) + len(s)/4)
	for i := 0; i < len(s); {
		if kinds != nil && kinds[i] != plain {
			switch c := s[i]; {
			case kinds[i] == escaped:
				writeEscape(&b, c, upperHex)
			case c == '/':
				writeEscape(&b, c, lowerHex)
			default:
				b.WriteByte(c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || r == '%' || r == '/' || unicode.IsControl(r) {
			for j := i; j < i+n; j++ {
				writeEscape(&b, s[j], upperHex)
			}
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

const (
	upperHex = "0123456789ABCDEF"
	lowerHex = "0123456789abcdef"
)

func writeEscape(b *strings.Builder, c byte, digits string) {
	b.WriteByte('%')
	b.WriteByte(digits[c>>4])
	b.WriteByte(digits[c&15])
}

// component makes a name safe as a final or directory name: the dot of a
// ".part" that ends the name or is followed by a dot is escaped (temporary
// names end in ".part" or ".part." and a suffix), and a name over
// MaxComponent bytes is cut and given a 128-bit digest of the whole after
// longMark.
func component(name string) string {
	if strings.Contains(name, PartSuffix) {
		var b strings.Builder
		for i := 0; i < len(name); i++ {
			if rest := name[i:]; strings.HasPrefix(rest, PartSuffix) && (len(rest) == len(PartSuffix) || rest[len(PartSuffix)] == '.') {
				b.WriteString("%2E")
				continue
			}
			b.WriteByte(name[i])
		}
		name = b.String()
	}
	if len(name) <= MaxComponent {
		return name
	}
	cut := MaxComponent - 1 - 32
	for cut > 2 && (name[cut-1] == '%' || name[cut-2] == '%' || !utf8.RuneStart(name[cut])) {
		cut-- // never split a %XX escape or a UTF-8 character
	}
	sum := xxh3.HashString128(name).Bytes()
	return fmt.Sprintf("%s%c%x", name[:cut], longMark, sum[:])
}

// isReserved reports whether c is a reserved character of RFC 3986 (2.2):
// gen-delims and sub-delims.
func isReserved(c byte) bool {
	return strings.IndexByte(":/?#[]@!$&'()*+,;=", c) >= 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
