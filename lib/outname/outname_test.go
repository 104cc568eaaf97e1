package outname_test

import (
	"fmt"
	"path"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/zeebo/xxh3"

	"github.com/ck-tools/ck/lib/outname"
)

// The tree layout's names, the examples first.
func TestTreeNames(t *testing.T) {
	tests := []struct{ url, want string }{
		// percent-decoding undone, once: %2520 is a "%20" of the resource's name
		{"https://example.org/with%20space/file%20name%2001.txt", "example.org/with space/file name 01.txt"},
		{"https://example.org/with space/file name 01.txt", "example.org/with space/file name 01.txt"},
		{"https://example.org/with%2520space", "example.org/with%2520space"},
		{"https://example.org/%C3%BCber/caf%c3%a9.bin", "example.org/über/café.bin"},
		{"https://example.org/über/café.bin", "example.org/über/café.bin"},
		{"https://example.org/data/part-0001.csv", "example.org/data/part-0001.csv"},
		// the host: lower-case, a port only when not the scheme's default, no scheme
		{"http://127.0.0.1:8080/a", "127.0.0.1:8080/a"},
		{"HTTP://Example.COM:80/a", "example.com/a"},
		{"https://example.com:443/a", "example.com/a"},
		{"https://example.com:80/a", "example.com:80/a"},
		{"http://example.com:443/a", "example.com:443/a"},
		{"http://example.com:/a", "example.com/a"},
		{"http://example.com:0080/a", "example.com/a"},
		{"http://[::1]:8080/a", "[::1]:8080/a"},
		{"http://[fe80::1%25en0]/a", "[fe80::1%25en0]/a"},
		{"https://user:pw@example.com/a#frag", "example.com/a"},
		// temporary suffixes
		{"https://h/archive.part1.rar", "h/archive.part1.rar"},
		{"https://h/x.part", "h/x%2Epart"},
		{"https://h/x.part.etag", "h/x%2Epart.etag"},
		{"https://h/x.part.part", "h/x%2Epart%2Epart"},
		{"https://h/x.part/y", "h/x%2Epart/y"},
		{"https://h/x?a=.part", "h/x?a=%2Epart"},
		{"https://h.part/x", "h%2Epart/x"},
		// what a name cannot hold
		{"https://h/..", "h/%2E%2E"},
		{"https://h/../../etc/passwd", "h/%2E%2E/%2E%2E/etc/passwd"},
		{"https://h/a/./b", "h/a/%2E/b"},
		{"https://h/a/%2e%2E/b", "h/a/%2E%2E/b"},
		{"https://h/...", "h/..."},
		{"https://h/.hidden", "h/.hidden"},
		{"http://../a", "%2E%2E/a"},
		{"https://h/a%2Fb", "h/a%2Fb"},
		{"https://h/a%2fb", "h/a%2Fb"},
		{"https://h/a%00b", "h/a%00b"},
		{"https://h/a%25b", "h/a%25b"},
		{"https://h/a%0Ab%7F%C2%9B", "h/a%0Ab%7F%C2%9B"},
		{"https://h/a%FFb", "h/a%FFb"},
		{"https://h/a\xffb", "h/a%FFb"},
		{"https://h/a//b", "h/a/%/b"},
		// reserved characters keep the form they were written in
		{"https://h/a;b=c", "h/a;b=c"},
		{"https://h/a%3Bb%3dc", "h/a%3Bb%3Dc"},
		{"https://h/a%3Fb", "h/a%3Fb"},
		{"https://h/a%23b", "h/a%23b"},
		{"https://h/%7Euser/%41%2D", "h/~user/A-"},
		// the query
		{"https://h/data.bin?v=2&lang=en", "h/data.bin?v=2&lang=en"},
		{"https://h/data.bin?q=a%20b", "h/data.bin?q=a b"},
		{"https://h/data.bin?q=a+b%2B", "h/data.bin?q=a+b%2B"},
		{"https://h/data.bin?", "h/data.bin?"},
		{"https://h/a?x=1/2", "h/a?x=1%2f2"},
		{"https://h/a?x=1%2F2", "h/a?x=1%2F2"},
		{"https://h/a?b?c", "h/a?b?c"},
		{"https://h/a?50%", "h/a?50%25"},
		// index.html
		{"https://example.com", "example.com/index.html"},
		{"https://example.com/", "example.com/index.html"},
		{"https://example.com/a/", "example.com/a/index.html"},
		{"https://example.com?q", "example.com/index.html?q"},
		{"https://example.com/a/?q", "example.com/a/index.html?q"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := outname.FromURL(tt.url)
			if err != nil || got != tt.want {
				t.Errorf("FromURL(%q) = %q, %v; want %q", tt.url, got, err, tt.want)
			}
			if got2, err := outname.Tree.Name(tt.url); got2 != got || err != nil {
				t.Errorf("Tree.Name(%q) = %q, %v; want FromURL's %q", tt.url, got2, err, got)
			}
		})
	}
}

// Long components are cut under MaxComponent, never inside an escape or a
// UTF-8 character, and keep apart by a digest of the whole.
func TestTreeLongNames(t *testing.T) {
	seen := map[string]string{}
	for _, seg := range []string{
		strings.Repeat("x", outname.MaxComponent),
		strings.Repeat("x", outname.MaxComponent+1),
		strings.Repeat("x", 300),
		strings.Repeat("x", 301),
		strings.Repeat("%25", 100),
		strings.Repeat("%25", 101),
		strings.Repeat("é", 150),
		"a" + strings.Repeat("é", 150),
		strings.Repeat("x", 299) + "?q=1",
		strings.Repeat("x", 299) + "?q=2",
	} {
		u := "https://h/" + seg + "/f"
		name, err := outname.FromURL(u)
		if err != nil {
			t.Fatalf("FromURL(%.40q...): %v", u, err)
		}
		c, _, _ := strings.Cut(name[len("h/"):], "/")
		if len(seg) <= outname.MaxComponent && !strings.Contains(seg, "%") && !strings.Contains(seg, "é") {
			if c != seg {
				t.Errorf("a %d-byte segment is named %q, want it whole", len(seg), c)
			}
		} else {
			switch {
			case len(c) > outname.MaxComponent:
				t.Errorf("%.40q...: component of %d bytes, over %d", seg, len(c), outname.MaxComponent)
			case !strings.Contains(c, "#"):
				t.Errorf("%.40q...: cut component %q has no digest mark", seg, c)
			case !utf8.ValidString(c):
				t.Errorf("%.40q...: cut inside a UTF-8 character: %q", seg, c)
			}
			if p := c[:strings.IndexByte(c, '#')]; strings.HasSuffix(p, "%") || strings.HasSuffix(p[:len(p)-1], "%") {
				t.Errorf("%.40q...: cut inside an escape: %q", seg, c)
			}
		}
		if prev, ok := seen[name]; ok {
			t.Errorf("%.50q and %.50q share the name %q", prev, u, name)
		}
		seen[name] = u
	}
}

// URLs of one group are one resource; no two groups share a name.
func TestTreeEquivalence(t *testing.T) {
	groups := [][]string{
		{"https://h/a b", "https://h/a%20b", "http://h/a%20b", "HTTPS://H/a%20b", "https://h:443/a b", "https://u@h/a%20b#x"},
		{"https://h/ü", "https://h/%C3%BC", "https://h/%c3%bc"},
		{"https://h/~a", "https://h/%7Ea", "https://h/%7ea", "https://h/%7E%61"},
		{"https://h/a/", "https://h/a/index.html", "https://h/a/%69ndex.html"},
		{"https://h", "https://h/", "https://h/index.html", "http://h:80/"},
		{"https://h/a%2Fb", "https://h/a%2fb"},
		{"https://h/a%3Bb", "https://h/a%3bb"},
		{"https://h/a?x=%41", "https://h/a?x=A"},
		{"https://h/a?50%", "https://h/a?50%25"},
		{"https://h/a/b"},
		{"https://h/A"},
		{"https://h/a"},
		{"https://h/a;b"},
		{"https://h/a?x=1"},
		{"https://h/a?x=1/2"},
		{"https://h/a?x=1%2F2"},
		{"https://h/a?"},
		{"https://h/a%25"},
		{"https://h/a%2520b"},
		{"https://h:8443/a"},
		{"https://h:80/a b"},
		{"https://h/a//"},
		{"https://h//a"},
		{"https://h/a/.."},
		{"https://h/a/index.htm"},
	}
	owner := map[string]int{}
	for gi, g := range groups {
		first, err := outname.FromURL(g[0])
		if err != nil {
			t.Fatalf("FromURL(%q): %v", g[0], err)
		}
		for _, u := range g[1:] {
			if got, err := outname.FromURL(u); got != first || err != nil {
				t.Errorf("FromURL(%q) = %q, %v; want %q, the name of %q", u, got, err, first, g[0])
			}
		}
		if prev, ok := owner[first]; ok {
			t.Errorf("%q and %q share the name %q", groups[prev][0], g[0], first)
		}
		owner[first] = gi
	}
	// "%" and an empty segment: the name of https://h//a is h/%/a, which a
	// URL cannot write as /%/a (that is no valid escape).
	if _, err := outname.FromURL("https://h/%/a"); err == nil {
		t.Errorf("FromURL(https://h/%%/a) works; the name %%/a of an empty segment would be ambiguous")
	}
}

func TestNameErrors(t *testing.T) {
	for _, l := range []outname.Layout{outname.Tree, outname.Flat} {
		for _, u := range []string{"ftp://h/a", "example.com/a", "http://", "http://h/%zz", "://x", "https://h/\x00", "http://:80/a"} {
			if name, err := l.Name(u); err == nil && !(l == outname.Flat && u == "http://:80/a") {
				t.Errorf("%s: Name(%q) = %q, want an error", l, u, name)
			}
		}
	}
	if _, err := outname.Layout("wget").Name("https://h/a"); err == nil {
		t.Errorf("an unknown layout names files")
	}
}

// The flat layout keeps the names of older versions byte for byte: lists
// half done with them resume.
func TestFlatNames(t *testing.T) {
	sum := xxh3.HashString128(strings.Repeat("x", 300)).Bytes() // a long name: cut, '@', the digest
	tests := []struct{ url, want string }{
		{"https://example.com/files/data.csv", "https/example.com/files%2Fdata.csv"},
		{"http://Example.COM:8080/a?b=1", "http/example.com%3A8080/a%3Fb=1"},
		{"https://example.com", "https/example.com/@"},
		{"https://example.com/", "https/example.com/@"},
		{"https://example.com/?q", "https/example.com/%3Fq"},
		{"https://example.com/a#frag", "https/example.com/a"},
		{"https://user:pw@example.com/a", "https/example.com/a"},
		{"https://example.com/..", "https/example.com/%2E."},
		{"https://example.com/../../etc/passwd", "https/example.com/%2E.%2F..%2Fetc%2Fpasswd"},
		{"https://example.com/x.part", "https/example.com/x%2Epart"},
		{"https://example.com/archive.part1.rar", "https/example.com/archive%2Epart1.rar"},
		{"https://example.com/with%20space/file%20name%2001.txt", "https/example.com/with%2520space%2Ffile%2520name%252001.txt"},
		{"https://example.com/" + strings.Repeat("x", 300), fmt.Sprintf("https/example.com/%s@%x", strings.Repeat("x", 167), sum[:])},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := outname.Flat.Name(tt.url)
			if err != nil || got != tt.want {
				t.Errorf("Flat.Name(%q) = %q, %v; want %q", tt.url, got, err, tt.want)
			}
		})
	}
}

// Distinct URLs never share a flat name, even when they differ only in ways
// a normaliser would erase.
func TestFlatDistinct(t *testing.T) {
	urls := []string{
		"https://h/a", "https://h/A", "https://h/a/", "https://h/a?x=1", "https://h/a?x=2",
		"https://h/a%20b", "https://h/a b", "https://h/a%2fb", "https://h/a/b", "https://h/a%2Fb",
		"http://h/a", "https://h:443/a", "https://h/%40", "https://h/@", "https://h//",
		"https://h/" + strings.Repeat("x", 300), "https://h/" + strings.Repeat("x", 301),
		"https://h/" + strings.Repeat("%25", 100), "https://h/" + strings.Repeat("%25", 101),
	}
	seen := map[string]string{}
	for _, u := range urls {
		name, err := outname.Flat.Name(u)
		if err != nil {
			t.Fatalf("Flat.Name(%q): %v", u, err)
		}
		if prev, ok := seen[name]; ok {
			t.Errorf("%q and %q share the name %q", prev, u, name)
		}
		seen[name] = u
		for _, c := range strings.Split(name, "/") {
			if len(c) > 200 || c == "" || c[0] == '.' || strings.Contains(c, ".part") {
				t.Errorf("Flat.Name(%q) = %q: bad component %q", u, name, c)
			}
		}
	}
}

func TestExplicit(t *testing.T) {
	good := map[string]string{
		"a.bin": "a.bin", "d/e/f.txt": "d/e/f.txt", "./a//b": "a/b",
		"archive.part1.rar": "archive.part1.rar", "x.partial": "x.partial",
		strings.Repeat("y", outname.MaxComponent): strings.Repeat("y", outname.MaxComponent),
	}
	for in, want := range good {
		if got, err := outname.Explicit(in); err != nil || got != want {
			t.Errorf("Explicit(%.40q) = %.40q, %v; want %.40q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "/etc/passwd", "../x", "a/../../x", "a/..", ".", "dir/", "x.part", "x.part.etag",
		"d.part/x", "a\x00b", strings.Repeat("y", outname.MaxComponent+1),
	} {
		if got, err := outname.Explicit(in); err == nil {
			t.Errorf("Explicit(%.40q) = %.40q, want an error", in, got)
		}
	}
}

// The owner record of a final file tells the URL it holds from other ones,
// whole or cut, and takes URLs of one resource (one name in either layout)
// as one.
func TestOwner(t *testing.T) {
	long := "https://example.com/" + strings.Repeat("x", 2000)
	tests := []struct {
		name, owner, url string
		same             bool
	}{
		{"same URL", "https://example.com/a", "https://example.com/a", true},
		{"another fragment", "https://example.com/a#x", "https://example.com/a#y", true},
		{"host and scheme in capitals", "HTTPS://EXAMPLE.com/a", "https://example.com/a", true},
		{"other scheme: one tree name", "http://example.com/a", "https://example.com/a", true},
		{"default port", "https://example.com:443/a", "https://example.com/a", true},
		{"escaped unreserved", "https://example.com/%7Ea", "https://example.com/~a", true},
		{"raw and escaped UTF-8", "https://example.com/ü", "https://example.com/%C3%BC", true},
		{"index.html", "https://example.com/a/", "https://example.com/a/index.html", true},
		{"another path", "https://example.com/a", "https://example.com/b", false},
		{"another query", "https://example.com/a?v=1", "https://example.com/a?v=2", false},
		{"path case", "https://example.com/A", "https://example.com/a", false},
		{"escaped slash", "https://example.com/a%2Fb", "https://example.com/a/b", false},
		{"another port", "https://example.com:8443/a", "https://example.com/a", false},
		{"not a URL", "junk", "https://example.com/a", false},
		{"long, same", long, long, true},
		{"long, another fragment", long + "#f", long, true},
		{"long, another scheme", "http" + long[len("https"):], long, true},
		{"long, differs past the cut", long + "a", long + "b", false},
		{"long and short", long, "https://example.com/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := outname.Owner(tt.owner)
			if len(rec) > outname.MaxOwnerURL+33 {
				t.Errorf("Owner of %d bytes is %d bytes; want at most %d", len(tt.owner), len(rec), outname.MaxOwnerURL+33)
			}
			if got := outname.SameOwner(rec, tt.url); got != tt.same {
				t.Errorf("SameOwner(Owner(%.40q), %.40q) = %v; want %v", tt.owner, tt.url, got, tt.same)
			}
			if got, want := outname.OwnerURL(rec), tt.owner; len(tt.owner) <= outname.MaxOwnerURL && got != want {
				t.Errorf("OwnerURL = %q; want %q", got, want)
			}
		})
	}
	if got := outname.OwnerURL(outname.Owner(long)); got != long[:outname.MaxOwnerURL]+"..." {
		t.Errorf("OwnerURL of a cut record = %.40q...; want the first %d bytes and ...", got, outname.MaxOwnerURL)
	}
}

// A cut record written before the tree layout (its digest is of the flat
// name) still names its URL, so files made then still count as done.
func TestOwnerBeforeTree(t *testing.T) {
	long := "https://example.com/" + strings.Repeat("x", 2000)
	old := func(u string) string {
		name, err := outname.Flat.Name(u)
		if err != nil {
			t.Fatal(err)
		}
		sum := xxh3.HashString128(name).Bytes()
		return u[:outname.MaxOwnerURL] + "\x00" + fmt.Sprintf("%x", sum[:])
	}
	if !outname.SameOwner(old(long), long) {
		t.Errorf("an old cut record is not its URL's")
	}
	if !outname.SameOwner(old(long), long+"#f") {
		t.Errorf("an old cut record is not its URL's with a fragment")
	}
	if outname.SameOwner(old(long+"a"), long+"b") {
		t.Errorf("an old cut record is another URL's")
	}
}

// Every layout's names stay inside the output directory.
func TestNamesLocal(t *testing.T) {
	for _, u := range []string{"https://h/..", "https://h/../..", "http://../..", "http://./.", "https://h/a/../../..", "https://h//", "https://h/%2e%2e/%2E"} {
		for _, l := range []outname.Layout{outname.Tree, outname.Flat} {
			name, err := l.Name(u)
			if err != nil {
				t.Fatalf("%s.Name(%q): %v", l, u, err)
			}
			if path.Clean(name) != name || strings.HasPrefix(name, "/") || strings.HasPrefix(name, "../") || name == ".." {
				t.Errorf("%s.Name(%q) = %q: not a clean relative path inside the directory", l, u, name)
			}
		}
	}
}
