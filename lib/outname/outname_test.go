package outname_test

import (
	"strings"
	"testing"

	"github.com/ck-tools/ck/lib/outname"
)

func TestFromURL(t *testing.T) {
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
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := outname.FromURL(tt.url)
			if err != nil || got != tt.want {
				t.Errorf("FromURL(%q) = %q, %v; want %q", tt.url, got, err, tt.want)
			}
		})
	}
}

// Distinct URLs never share a name, even when they differ only in ways a
// normaliser would erase.
func TestFromURLDistinct(t *testing.T) {
	urls := []string{
		"https://h/a", "https://h/A", "https://h/a/", "https://h/a?x=1", "https://h/a?x=2",
		"https://h/a%20b", "https://h/a b", "https://h/a%2fb", "https://h/a/b", "https://h/a%2Fb",
		"http://h/a", "https://h:443/a", "https://h/%40", "https://h/@", "https://h//",
		"https://h/" + strings.Repeat("x", 300), "https://h/" + strings.Repeat("x", 301),
		"https://h/" + strings.Repeat("%25", 100), "https://h/" + strings.Repeat("%25", 101),
	}
	seen := map[string]string{}
	for _, u := range urls {
		name, err := outname.FromURL(u)
		if err != nil {
			t.Fatalf("FromURL(%q): %v", u, err)
		}
		if prev, ok := seen[name]; ok {
			t.Errorf("%q and %q share the name %q", prev, u, name)
		}
		seen[name] = u
		for _, c := range strings.Split(name, "/") {
			if len(c) > outname.MaxComponent || c == "" || c[0] == '.' || strings.Contains(c, ".part") {
				t.Errorf("FromURL(%q) = %q: bad component %q", u, name, c)
			}
		}
	}
}

func TestFromURLErrors(t *testing.T) {
	for _, u := range []string{"ftp://h/a", "example.com/a", "http://", "http://h/%zz", "://x", "https://h/\x00"} {
		if name, err := outname.FromURL(u); err == nil {
			t.Errorf("FromURL(%q) = %q, want an error", u, name)
		}
	}
}

func TestExplicit(t *testing.T) {
	good := map[string]string{"a.bin": "a.bin", "d/e/f.txt": "d/e/f.txt", "./a//b": "a/b"}
	for in, want := range good {
		if got, err := outname.Explicit(in); err != nil || got != want {
			t.Errorf("Explicit(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "/etc/passwd", "../x", "a/../../x", "a/..", ".", "dir/", "x.part", "a\x00b", strings.Repeat("y", 201)} {
		if got, err := outname.Explicit(in); err == nil {
			t.Errorf("Explicit(%q) = %q, want an error", in, got)
		}
	}
}

// The owner record of a final file tells the URL it holds from other ones,
// whole or cut, and takes URLs of one resource (one default name) as one.
func TestOwner(t *testing.T) {
	long := "https://example.com/" + strings.Repeat("x", 2000)
	tests := []struct {
		name, owner, url string
		same             bool
	}{
		{"same URL", "https://example.com/a", "https://example.com/a", true},
		{"another fragment", "https://example.com/a#x", "https://example.com/a#y", true},
		{"host and scheme in capitals", "HTTPS://EXAMPLE.com/a", "https://example.com/a", true},
		{"another path", "https://example.com/a", "https://example.com/b", false},
		{"another query", "https://example.com/a?v=1", "https://example.com/a?v=2", false},
		{"other scheme", "http://example.com/a", "https://example.com/a", false},
		{"path case", "https://example.com/A", "https://example.com/a", false},
		{"not a URL", "junk", "https://example.com/a", false},
		{"long, same", long, long, true},
		{"long, another fragment", long + "#f", long, true},
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
