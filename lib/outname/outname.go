// Package outname turns a URL into the relative path ckfetch saves it under,
// and checks the explicit paths users give.
//
// The default layout, Tree (as wget -x), is HOST[:PORT]/SEG/.../FILE:
//
//   - HOST is the URL's host lower-cased (its ASCII letters), with ":PORT"
//     only for a port that is not the scheme's default. The scheme is not part
//     of the name: http://h/a and https://h/a share a file.
//   - Each path segment is the bytes it stands for: "%20" is a space,
//     "%C3%BC" and a raw "ü" are both "ü". What a name cannot hold, or a
//     reader could not see, stays %XX (upper-case hex): a '%' itself, NUL,
//     control characters and bytes that are not valid UTF-8. A reserved
//     character of RFC 3986 (":/?#[]@!$&'()*+,;=") keeps the form it was
//     written in, since the two forms are different URLs: "%2F" stays "%2F"
//     and "/" separates directories, "%3B" stays "%3B" and ";" stays ";". A
//     segment "." or ".." is "%2E" or "%2E%2E"; an empty one (/a//b) is "%".
//   - The query, as written and escaped the same way, is part of the file
//     name: data.bin?v=2&lang=en. A '/' written as is in a query is "%2f",
//     the one lower-case escape, because "%2F" names a "%2F" of the URL.
//   - A trailing slash or an empty path names index.html, so /a/ and
//     /a/index.html are one file.
//
// So URLs that are equivalent under RFC 3986 normalisation (case of the
// scheme, the host and the hex digits of escapes, a default or empty port,
// unreserved characters escaped or not), and URLs written raw or
// percent-encoded (UTF-8, a space), share a file; apart from the scheme and
// index.html, URLs that are not equivalent never do: a name read back gives
// the URL's bytes and the form of each reserved character. Dot segments are
// not removed (/a/../b is a/%2E%2E/b): a client sends them as written. No
// component is empty, "." or "..", so no name leaves the output directory.
//
// A Tree component never ends in ".part" or holds ".part." (the names of
// temporary files: that dot is escaped, so archive.part1.rar keeps its name
// and x.part is x%2Epart), and one over MaxComponent bytes is cut (never
// inside an escape or a UTF-8 character) and given a 128-bit digest of the
// whole, after a '#' that no shorter name holds.
//
// The Flat layout is the one of older versions, kept byte for byte so that
// their half-done lists resume: SCHEME/HOST/ESCAPED, the path and query as
// written with every byte outside [A-Za-z0-9._~=,+-] escaped (see flat.go).
//
// The userinfo and fragment of a URL are not part of its name in either
// layout: they do not change the resource the server sends.
//
// Owner is what ckfetch records with a final file to say which URL it holds,
// so that a line whose final name is another URL's file fails instead of
// counting as done; URLs of one name, in either layout, are one owner
// (SameOwner).
package outname

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
)

// MaxComponent is the longest file name component produced or accepted:
// the usual 255-byte limit less room for a temporary suffix (".part.etag").
const MaxComponent = 240

// PartSuffix ends the name of every temporary file; no final name ends in
// it or holds it followed by a dot.
const PartSuffix = ".part"

// Layout is a way of naming the file of a URL.
type Layout string

// The layouts of --layout.
const (
	Tree Layout = "tree" // HOST[:PORT]/decoded/path/file?query, the default
	Flat Layout = "flat" // SCHEME/HOST/escaped-path-and-query, of older versions
)

// Name returns the relative output path of a URL in layout l (the zero
// Layout is Tree), or an error saying why the URL cannot be downloaded.
func (l Layout) Name(rawURL string) (string, error) {
	name, _, err := l.Parse(rawURL)
	return name, err
}

// Parse is Name, which also returns the URL as url.Parse parses it (nil
// with an error), so that a caller needs no second parse.
func (l Layout) Parse(rawURL string) (name string, u *url.URL, err error) {
	if l != Tree && l != "" && l != Flat {
		return "", nil, fmt.Errorf("unknown layout %q (tree or flat)", string(l))
	}
	if l == Flat {
		if name, err = flatName(rawURL); err != nil { // flat.go is kept byte for byte: it parses on its own
			return "", nil, err
		}
		u, _, err = parseURL(rawURL)
		return name, u, err
	}
	u, rest, err := parseURL(rawURL)
	if err != nil {
		return "", nil, err
	}
	if name, err = treeName(u, rest); err != nil {
		return "", nil, err
	}
	return name, u, nil
}

// FromURL returns the default (Tree) relative output path of a URL, or an
// error saying why the URL cannot be downloaded.
func FromURL(rawURL string) (string, error) { return Tree.Name(rawURL) }

// parseURL checks that raw is an http or https URL with a host, and returns
// it parsed and its path and query as written (everything after the
// authority, up to the fragment).
func parseURL(raw string) (*url.URL, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", fmt.Errorf("invalid URL: %w", errors.Unwrap(err))
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		if u.Scheme == "" {
			return nil, "", errors.New("invalid URL: no http:// or https:// scheme")
		}
		return nil, "", fmt.Errorf("unsupported URL scheme %q (http and https only)", u.Scheme)
	}
	if u.Host == "" {
		return nil, "", errors.New("invalid URL: no host")
	}
	rest := raw[len(u.Scheme)+len("://"):]
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[i:]
	} else {
		rest = ""
	}
	rest, _, _ = strings.Cut(rest, "#")
	return u, rest, nil
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
		if strings.HasSuffix(c, PartSuffix) || strings.Contains(c, PartSuffix+".") {
			return "", fmt.Errorf("output path %q has a name ending in %q or holding %q, which mark temporary files", p, PartSuffix, PartSuffix+".")
		}
	}
	clean := path.Clean(p)
	if clean == "." || strings.HasSuffix(p, "/") {
		return "", fmt.Errorf("output path %q names a directory, not a file", p)
	}
	return clean, nil
}
