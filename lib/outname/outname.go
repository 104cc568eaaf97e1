// Package outname turns a URL into the relative path ckfetch saves it under,
// and checks the explicit paths users give.
//
// A default name is SCHEME/HOST/ESCAPED, where ESCAPED is the URL's path and
// query exactly as written in the input (not decoded, not normalised), with
// every byte outside [A-Za-z0-9._~=,+-] written as %XX. The mapping is
// injective on (scheme, host, path and query), so distinct URLs, even ones
// that differ only by case, a trailing slash or percent-encoding, never share
// a file, and the same URL always lands on the same path, which is what lets a
// rerun find its finished file and its .part file. A name never starts with a
// dot and never contains ".part" (both are escaped), and a component longer
// than MaxComponent bytes is cut and given a 128-bit digest of the whole, with
// '@', a byte escaping never emits, so a long name cannot equal a short one.
//
// The userinfo and fragment of a URL are not part of its name: they do not
// change the resource the server sends.
//
// Owner is what ckfetch records with a final file to say which URL it holds,
// so that a line whose final name is another URL's file fails instead of
// counting as done; URLs of one default name are one owner (SameOwner).
package outname

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/zeebo/xxh3"
)

// MaxComponent is the longest file name component produced or accepted. It
// leaves room for the ".part" suffix under the usual 255-byte limit.
const MaxComponent = 200

// PartSuffix ends the name of every temporary file; no final name contains it.
const PartSuffix = ".part"

// FromURL returns the default relative output path of a URL, or an error
// saying why the URL cannot be downloaded.
func FromURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("invalid URL: %w", errors.Unwrap(err))
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		if u.Scheme == "" {
			return "", errors.New("invalid URL: no http:// or https:// scheme")
		}
		return "", fmt.Errorf("unsupported URL scheme %q (http and https only)", u.Scheme)
	}
	if u.Host == "" {
		return "", errors.New("invalid URL: no host")
	}
	// The path and query as written: everything after the authority, up to the fragment.
	rest := raw[len(u.Scheme)+len("://"):]
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[i:]
	} else {
		rest = ""
	}
	rest, _, _ = strings.Cut(rest, "#")
	if rest == "" || rest[0] == '?' {
		rest = "/" + rest // http://h and http://h/ are the same resource
	}
	return scheme + "/" + component(strings.ToLower(u.Host)) + "/" + component(rest[1:]), nil
}

// component escapes s into one safe, non-empty file name component.
func component(s string) string {
	if s == "" {
		return "@" // the bare "/": '@' is never produced by escaping
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keep(c) && !(i == 0 && c == '.') {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	name := strings.ReplaceAll(b.String(), PartSuffix, "%2Epart")
	if len(name) > MaxComponent {
		cut := MaxComponent - 33
		for cut > 0 && (name[cut-1] == '%' || (cut > 1 && name[cut-2] == '%')) {
			cut-- // never split a %XX escape
		}
		sum := xxh3.HashString128(s).Bytes()
		name = fmt.Sprintf("%s@%x", name[:cut], sum[:])
	}
	return name
}

func keep(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("._~=,+-", c) >= 0
}

// Explicit checks a path given by the user (URL<TAB>PATH), relative to the
// output directory, and returns it cleaned. It refuses anything that could
// escape the directory or collide with a temporary file.
func Explicit(p string) (string, error) {
	switch {
	case p == "":
		return "", errors.New("empty output path")
	case strings.IndexByte(p, 0) >= 0:
		return "", errors.New("output path contains a NUL byte")
	case strings.HasPrefix(p, "/"):
		return "", fmt.Errorf("output path %q is absolute; give a path relative to the output directory", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", fmt.Errorf("output path %q leaves the output directory", p)
		}
		if len(c) > MaxComponent {
			return "", fmt.Errorf("output path %q has a component over %d bytes", p, MaxComponent)
		}
	}
	clean := path.Clean(p)
	if clean == "." || strings.HasSuffix(p, "/") {
		return "", fmt.Errorf("output path %q names a directory, not a file", p)
	}
	if strings.Contains(clean, PartSuffix) {
		return "", fmt.Errorf("output path %q contains %q, which marks temporary files", p, PartSuffix)
	}
	return clean, nil
}

// MaxOwnerURL is the longest URL an owner record (see Owner) holds whole;
// a longer one is cut there, so the record fits in any file system's
// extended attributes.
const MaxOwnerURL = 1024

// Owner returns the record that ckfetch keeps with a final file to say which
// URL it is the file of: the URL itself, or for a URL over MaxOwnerURL bytes
// its first MaxOwnerURL bytes, a NUL (which no URL ckfetch fetches contains)
// and a 128-bit digest of its default name.
func Owner(rawURL string) string {
	if len(rawURL) <= MaxOwnerURL {
		return rawURL
	}
	return rawURL[:MaxOwnerURL] + "\x00" + resourceKey(rawURL)
}

// SameOwner reports whether an owner record names the resource of rawURL:
// the same URL, or one with the same default name (URLs that differ only in
// what FromURL ignores, such as the fragment or the case of the scheme and
// host, are one resource and share a file).
func SameOwner(owner, rawURL string) bool {
	if owner == rawURL || owner == Owner(rawURL) {
		return true
	}
	key := ""
	if i := strings.IndexByte(owner, 0); i >= 0 {
		key = owner[i+1:]
	} else {
		key = resourceKey(owner)
	}
	return key == resourceKey(rawURL)
}

// OwnerURL returns the URL of an owner record for a message, marked when
// it was cut.
func OwnerURL(owner string) string {
	if i := strings.IndexByte(owner, 0); i >= 0 {
		return owner[:i] + "..."
	}
	return owner
}

// resourceKey is a digest of what identifies a URL's resource: its default
// name, or for a string that is no URL ckfetch fetches, the string itself.
func resourceKey(rawURL string) string {
	name, err := FromURL(rawURL)
	if err != nil {
		name = "\x00" + rawURL // apart from every name
	}
	sum := xxh3.HashString128(name).Bytes()
	return fmt.Sprintf("%x", sum[:])
}
