package download_test

import (
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/download"
	"github.com/ck-tools/ck/lib/durable"
	"github.com/ck-tools/ck/lib/fetchtest"
)

func mustClient(c *http.Client, err error) *http.Client {
	if err != nil {
		panic(err)
	}
	return c
}

func TestParseHeaders(t *testing.T) {
	h, err := download.ParseHeaders([]string{
		"X-One: 1", "x-one:2", "Authorization:  Bearer s3cret ", "User-Agent:", "X-Empty;", "Accept: a, b",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := http.Header{
		"X-One": {"1", "2"}, "Authorization": {"Bearer s3cret"}, "User-Agent": {}, "X-Empty": {""}, "Accept": {"a, b"},
	}
	if len(h) != len(want) {
		t.Errorf("got %q; want %q", h, want)
	}
	for k, v := range want {
		if strings.Join(h[k], "|") != strings.Join(v, "|") || (h[k] == nil) {
			t.Errorf("%s: %q; want %q", k, h[k], v)
		}
	}
	for _, tc := range []struct{ in, msg string }{
		{"Authorization Bearer s3cret", "-H number 1 has no ':'"},
		{"Bad Name: s3cret", "-H number 1: the part before ':' is not a header name"},
		{": s3cret", "-H number 1: the part before ':' is not a header name"},
		{"X-Token: s3cret\nX-Evil: 1", "-H X-Token (number 1): the value holds a control character"},
		{"Range: bytes=0-s3cret", "-H Range (number 1): ckfetch sets Range itself"},
		{"accept-encoding: gzip-s3cret", "-H Accept-Encoding (number 1): ckfetch sets Accept-Encoding itself"},
	} {
		_, err := download.ParseHeaders([]string{tc.in})
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseHeaders(%q): error %v; want one with %q", tc.in, err, tc.msg)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ParseHeaders(%q): the error shows the value: %v", tc.in, err)
		}
	}
}

func TestParseNetrc(t *testing.T) {
	n, err := download.ParseNetrc("nrc", `# a comment line: machine evil login x password y
machine a.example login alice password "p w\"1"
machine B.example
	login bob
	password pb account acc
macdef init
cd /pub
machine fake login mallory password m

machine a.example login carol password pc
default login anon password guest
`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host, login    string
		withDefault    bool
		user, password string
		ok             bool
	}{
		{"a.example", "", false, "alice", `p w"1`, true},
		{"A.EXAMPLE", "carol", false, "carol", "pc", true},
		{"b.example", "", false, "bob", "pb", true},
		{"evil", "", false, "", "", false},
		{"fake", "", false, "", "", false}, // inside the macro
		{"other.example", "", false, "", "", false},
		{"other.example", "", true, "anon", "guest", true},
		{"a.example", "dave", true, "", "", false},
	} {
		user, password, ok := n.Lookup(tc.host, tc.login, tc.withDefault)
		if user != tc.user || password != tc.password || ok != tc.ok {
			t.Errorf("Lookup(%q, %q, %v) = %q, %q, %v; want %q, %q, %v", tc.host, tc.login, tc.withDefault, user, password, ok, tc.user, tc.password, tc.ok)
		}
	}
	for _, tc := range []struct{ in, msg string }{
		{"machine a login x\npassword", `nrc:2: "password" has no value at the end of the file`},
		{"login x", `nrc:1: "login" before any "machine" or "default"`},
		{"machine a\n\n  login x pasword s3cret", "nrc:3: a word that is not machine"},
		{"machine a login x password my s3cret", "nrc:1: a word that is not machine"},
		{"machine a\npassword \"s3cret", `nrc:2: a quoted word does not end`},
		{"default\ndefault", `nrc:2: a second "default" entry`},
	} {
		_, err := download.ParseNetrc("nrc", tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseNetrc(%q): error %v; want one with %q", tc.in, err, tc.msg)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ParseNetrc(%q): the error shows a secret: %v", tc.in, err)
		}
	}
}

// hostURL is srv's base URL with its host written as host.
func hostURL(srv *fetchtest.Server, host string) string {
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return "http://" + net.JoinHostPort(host, port)
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// TestFetchHeaders: what each server of a redirect chain receives. Two
// servers on 127.0.0.1 with different ports are different hosts; netrc
// machines are host names, so the other host is also reached as
// "localhost" to tell netrc entries apart.
func TestFetchHeaders(t *testing.T) {
	a, b := fetchtest.New(), fetchtest.New()
	defer a.Close()
	defer b.Close()
	nrc, err := download.ParseNetrc("nrc", "machine 127.0.0.1 login nu password np\ndefault login du password dp\n")
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := download.ParseHeaders([]string{"X-Test: yes", "Authorization: Bearer tok", "Cookie: c=1"})
	if err != nil {
		t.Fatal(err)
	}
	redirect := func(from, to string) string { return from + "/redirect?to=" + url.QueryEscape(to) }
	type seen struct {
		srv  *fetchtest.Server
		path string
		want map[string]string // header: value, "" for absent
	}
	all := map[string]string{"X-Test": "yes", "Authorization": "Bearer tok", "Cookie": "c=1", "User-Agent": "ck-test/1"}
	other := map[string]string{"X-Test": "yes", "Authorization": "", "Cookie": "", "User-Agent": "ck-test/1"}
	vhost, err := download.ParseHeaders([]string{"Host: vhost.example"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		header http.Header
		netrc  *download.Netrc
		url    string
		seen   []seen
	}{
		{"-H at the origin", hdr, nil, a.URL + "/f/h1?size=10", []seen{{a, "/f/h1?size=10", all}}},
		{"-H after a redirect to another port", hdr, nil, redirect(a.URL, b.URL+"/f/h2?size=10"),
			[]seen{{a, "/redirect?to=" + url.QueryEscape(b.URL+"/f/h2?size=10"), all}, {b, "/f/h2?size=10", other}}},
		{"-H back at the origin after another host", hdr, nil, redirect(a.URL, redirect(b.URL, a.URL+"/f/h3?size=10")),
			[]seen{{b, "/redirect?to=" + url.QueryEscape(a.URL+"/f/h3?size=10"), other}, {a, "/f/h3?size=10", all}}},
		{"-H Authorization wins over netrc", hdr, nrc, a.URL + "/f/h4?size=10", []seen{{a, "/f/h4?size=10", all}}},
		{"netrc machine", nil, nrc, a.URL + "/f/n1?size=10",
			[]seen{{a, "/f/n1?size=10", map[string]string{"Authorization": basic("nu", "np")}}}},
		{"netrc machine not sent to another host name", nil, nrc, redirect(a.URL, hostURL(b, "localhost")+"/f/n2?size=10"),
			[]seen{{b, "/f/n2?size=10", map[string]string{"Authorization": ""}}}},
		{"netrc machine of the redirect's host", nil, nrc, redirect(hostURL(b, "localhost"), a.URL+"/f/n3?size=10"),
			[]seen{{b, "/redirect?to=" + url.QueryEscape(a.URL+"/f/n3?size=10"), map[string]string{"Authorization": basic("du", "dp")}},
				{a, "/f/n3?size=10", map[string]string{"Authorization": basic("nu", "np")}}}},
		{"netrc default not sent to another host", nil, nrc, redirect(hostURL(b, "localhost"), a.URL+"/status/404"),
			[]seen{{a, "/status/404", map[string]string{"Authorization": basic("nu", "np")}}}},
		{"netrc default only at the origin", nil, nrc, redirect(hostURL(a, "localhost"), hostURL(b, "localhost")+"/f/n4?size=10"),
			[]seen{{b, "/f/n4?size=10", map[string]string{"Authorization": ""}}}},
		{"URL user:password kept at the origin", nil, nil, strings.Replace(redirect(a.URL, "/f/u1?size=10"), "http://", "http://us:pw@", 1),
			[]seen{{a, "/f/u1?size=10", map[string]string{"Authorization": basic("us", "pw")}}}},
		{"URL user:password not sent to another host", nil, nil, strings.Replace(redirect(a.URL, b.URL+"/f/u2?size=10"), "http://", "http://us:pw@", 1),
			[]seen{{b, "/f/u2?size=10", map[string]string{"Authorization": ""}}}},
		{"-H Host at the origin only", vhost, nil, redirect(a.URL, b.URL+"/f/v1?size=10"),
			[]seen{{a, "/redirect?to=" + url.QueryEscape(b.URL+"/f/v1?size=10"), map[string]string{":host": "vhost.example"}},
				{b, "/f/v1?size=10", map[string]string{":host": strings.TrimPrefix(b.URL, "http://")}}}},
		{"URL user gets the netrc password of that login", nil, nrc, strings.Replace(a.URL, "http://", "http://nu@", 1) + "/f/u3?size=10",
			[]seen{{a, "/f/u3?size=10", map[string]string{"Authorization": basic("nu", "np")}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &download.Fetcher{
				Client:    mustClient(download.NewClient(download.ClientOptions{ConnectTimeout: 5 * time.Second, Jobs: 1, PerHost: 1})),
				Dirs:      &durable.DirSyncer{},
				Header:    tc.header,
				UserAgent: "ck-test/1",
				Netrc:     tc.netrc,
			}
			f.Fetch(context.Background(), tc.url, "h", filepath.Join(t.TempDir(), "file"))
			for _, s := range tc.seen {
				got := s.srv.Received(s.path)
				if len(got) != 1 {
					t.Fatalf("%s got %d requests for %s; want 1", s.srv.URL, len(got), s.path)
				}
				for name, want := range s.want {
					v := got[0].Header.Get(name)
					if name == ":host" {
						v = got[0].Host
					}
					if v != want {
						t.Errorf("%s%s got %s: %q; want %q", s.srv.URL, s.path, name, v, want)
					}
				}
			}
		})
	}
}

func TestRateLimitBurst(t *testing.T) {
	for rate, want := range map[int64]int{1: 1, 1000: 1000, 1 << 20: 32 << 10} {
		if got := download.NewRateLimit(rate).Burst(); got != want {
			t.Errorf("NewRateLimit(%d).Burst() = %d; want %d", rate, got, want)
		}
	}
}

// TestRequestTargetAsWritten: a URL is asked for as it was written, with
// only the bytes a request line cannot carry escaped: a raw space in a
// query drew a 400, and a raw space beside a %3B made net/http send the
// path re-escaped from its decoded form, with ';' for the %3B.
func TestRequestTargetAsWritten(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	for _, tc := range []struct{ in, sent string }{
		{"/f/q?size=10&tag=a b", "/f/q?size=10&tag=a%20b"},
		{"/f/a b%3Bc?size=10", "/f/a%20b%3Bc?size=10"},
		{"/f/caf\u00e9?size=10&tag=\u00fc", "/f/caf%C3%A9?size=10&tag=%C3%BC"},
		{"/f/x?size=10&tag=%7c|", "/f/x?size=10&tag=%7c%7C"},
		{"/f/plain%2Fslash?size=10", "/f/plain%2Fslash?size=10"},
	} {
		f := &download.Fetcher{
			Client: mustClient(download.NewClient(download.ClientOptions{ConnectTimeout: 5 * time.Second, Jobs: 1, PerHost: 1})),
			Dirs:   &durable.DirSyncer{},
		}
		res := f.Fetch(context.Background(), srv.URL+tc.in, "h", filepath.Join(t.TempDir(), "file"))
		if res.Status != download.Done {
			t.Errorf("%s: %s (%v); want done", tc.in, res.Status, res.Err)
		}
		if n := srv.Requests(tc.sent); n != 1 {
			t.Errorf("%s: %d requests for %s; want 1 (the server saw %v)", tc.in, n, tc.sent, srv.Stats(false).URLs)
		}
	}
}

func TestHostKey(t *testing.T) {
	for in, want := range map[string]string{
		"http://Example.ORG/a":      "example.org:80",
		"http://example.org:80/a":   "example.org:80",
		"https://example.org/a":     "example.org:443",
		"https://example.org:8443/": "example.org:8443",
		"http://[::1]:8080/":        "[::1]:8080",
		"http://[::1]/":             "[::1]:80",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := download.HostKey(u); got != want {
			t.Errorf("HostKey(%s) = %s; want %s", in, got, want)
		}
	}
}
