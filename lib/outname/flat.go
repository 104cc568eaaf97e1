package outname

import (
	"fmt"
	"strings"

	"github.com/zeebo/xxh3"
)

// The flat layout is the one of ckfetch before the tree layout, kept byte for
// byte so that lists half done with it still find their files and their
// .part files: SCHEME/HOST/ESCAPED, where ESCAPED is the URL's path and query
// exactly as written in the input (not decoded, not normalised), with every
// byte outside [A-Za-z0-9._~=,+-] written as %XX. It is injective on
// (scheme, host, path and query as written). A name never starts with a dot
// and never contains ".part" (both are escaped), and a component longer than
// flatMaxComponent bytes is cut and given a 128-bit digest of the whole, with
// '@', a byte escaping never emits, so a long name cannot equal a short one.
// Do not change anything in this file: every change renames files on disk.

// flatMaxComponent is the longest component of a flat name.
const flatMaxComponent = 200

// flatName returns the flat-layout name of rawURL.
func flatName(raw string) (string, error) {
	u, rest, err := parseURL(raw)
	if err != nil {
		return "", err
	}
	if rest == "" || rest[0] == '?' {
		rest = "/" + rest // http://h and http://h/ are the same resource
	}
	return strings.ToLower(u.Scheme) + "/" + flatComponent(strings.ToLower(u.Host)) + "/" + flatComponent(rest[1:]), nil
}

// flatComponent escapes s into one safe, non-empty file name component.
func flatComponent(s string) string {
	if s == "" {
		return "@" // the bare "/": '@' is never produced by escaping
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if flatKeep(c) && !(i == 0 && c == '.') {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	name := strings.ReplaceAll(b.String(), PartSuffix, "%2Epart")
	if len(name) > flatMaxComponent {
		cut := flatMaxComponent - 33
		for cut > 0 && (name[cut-1] == '%' || (cut > 1 && name[cut-2] == '%')) {
			cut-- // never split a %XX escape
		}
		sum := xxh3.HashString128(s).Bytes()
		name = fmt.Sprintf("%s@%x", name[:cut], sum[:])
	}
	return name
}

func flatKeep(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("._~=,+-", c) >= 0
}
