package download_test

// Checksums on a line and the sha256 of --report (issue 9, "Integrity"), and
// transport errors that do not repeat the URL ("Messages").

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ck-tools/ck/lib/download"
	"github.com/ck-tools/ck/lib/fetchtest"
)

var hashes = map[string]func() hash.Hash{"sha256": sha256.New, "sha512": sha512.New, "sha1": sha1.New, "md5": md5.New}

// sumOf is the checksum algo=HEX of b.
func sumOf(algo string, b []byte) string {
	h := hashes[algo]()
	h.Write(b)
	return algo + "=" + hex.EncodeToString(h.Sum(nil))
}

func mustChecksum(t *testing.T, s string) download.Checksum {
	t.Helper()
	c, err := download.ParseChecksum(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wrongSum is a checksum of algo that no test body has.
func wrongSum(algo string) string { return sumOf(algo, []byte("not the body")) }

func TestParseChecksum(t *testing.T) {
	body := []byte("abc")
	for _, tt := range []struct{ in, want string }{
		{sumOf("sha256", body), sumOf("sha256", body)},
		{sumOf("sha512", body), sumOf("sha512", body)},
		{sumOf("sha1", body), sumOf("sha1", body)},
		{sumOf("md5", body), sumOf("md5", body)},
		{strings.ToUpper(sumOf("sha256", body)), sumOf("sha256", body)},                            // algorithm and hex in capitals
		{"sha-256=" + strings.TrimPrefix(sumOf("sha256", body), "sha256="), sumOf("sha256", body)}, // aria2's spelling
		{"SHA-1=" + strings.TrimPrefix(sumOf("sha1", body), "sha1="), sumOf("sha1", body)},
	} {
		c, err := download.ParseChecksum(tt.in)
		if err != nil || c.String() != tt.want {
			t.Errorf("ParseChecksum(%q) = %v, %v; want %s", tt.in, c, err, tt.want)
		}
	}
	for _, tt := range []struct{ in, reason string }{
		{"", "want ALGO=HEX"},
		{"deadbeef", "want ALGO=HEX"},
		{"crc32=deadbeef", `unknown algorithm "crc32" (sha256, sha512, sha1 or md5)`},
		{"=abcd", `unknown algorithm ""`},
		{"sha256=abcd", "sha256 takes 64 hex digits"},
		{"md5=" + strings.Repeat("g", 32), "md5 takes 32 hex digits"},
		{sumOf("sha256", body) + "0", "sha256 takes 64 hex digits"},
		{"sha1=" + strings.TrimPrefix(sumOf("md5", body), "md5="), "sha1 takes 40 hex digits"},
	} {
		_, err := download.ParseChecksum(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.reason) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.in)) {
			t.Errorf("ParseChecksum(%q): error %v; want one that quotes it and says %q", tt.in, err, tt.reason)
		}
	}
}

// noPart fails if dest, its .part or its sidecar exist.
func noFiles(t *testing.T, dest string) {
	t.Helper()
	for _, name := range []string{dest, dest + ".part", dest + ".part.etag"} {
		if _, err := os.Lstat(name); err == nil {
			t.Errorf("%s is there; want no file", name)
		}
	}
}

// Each algorithm: the right checksum gives the file, a wrong one fails the
// download with both digests and leaves neither the file nor its .part.
func TestChecksum(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	const path = "/f/c?size=300000"
	body := fetchtest.Body("c", 300000)
	for algo := range hashes {
		t.Run(algo+" right", func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "file")
			res := newFetcher(0).FetchWith(context.Background(), srv.URL+path, "h", dest, download.Options{Checksum: mustChecksum(t, sumOf(algo, body))})
			if res.Status != download.Done {
				t.Fatalf("got %s (%v); want done", res.Status, res.Err)
			}
			wantBody(t, dest, body)
			if want := map[bool]string{true: sumOf("sha256", body)[7:]}[algo == "sha256"]; res.SHA256 != want {
				t.Errorf("Result.SHA256 %q; want %q (computed only for a sha256 checksum, or when asked for)", res.SHA256, want)
			}
		})
		t.Run(algo+" wrong", func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "file")
			want := wrongSum(algo)
			res := newFetcher(3).FetchWith(context.Background(), srv.URL+path, "h", dest, download.Options{Checksum: mustChecksum(t, want)})
			if res.Status != download.Failed || res.Fatal || res.Attempts != 1 {
				t.Fatalf("got %s after %d attempts, fatal %v (%v); want failed after one, not fatal", res.Status, res.Attempts, res.Fatal, res.Err)
			}
			got := sumOf(algo, body)
			msg := fmt.Sprint(res.Err)
			if !strings.Contains(msg, "checksum mismatch") || !strings.Contains(msg, got[len(algo)+1:]) || !strings.Contains(msg, want[len(algo)+1:]) {
				t.Errorf("error %q; want a checksum mismatch naming both digests, %s and %s", msg, got, want)
			}
			noFiles(t, dest)
		})
	}
}

// A download resumed from the .part of an earlier run is checked over its
// whole file: the bytes the .part held are hashed too. Wrong bytes in the
// .part (with a validator that still matches) fail the check though every
// byte of this run is right; right ones pass, and the sha256 is the whole
// file's.
func TestChecksumResumed(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	const path = "/f/r?size=500000"
	body := fetchtest.Body("r", 500000)
	bad := append([]byte(nil), body[:200000]...)
	bad[1000] ^= 1
	for _, tt := range []struct {
		name  string
		part  []byte
		algo  string
		right bool
	}{
		{"right bytes, sha256", body[:200000], "sha256", true},
		{"right bytes, md5", body[:200000], "md5", true},
		{"a wrong byte in the .part, sha256", bad, "sha256", false},
		{"a wrong byte in the .part, sha1", bad, "sha1", false},
		{"a whole .part (416), right", body, "sha512", true},
		{"a whole .part (416), wrong byte", append(append([]byte(nil), bad...), body[200000:]...), "sha512", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dest := partWith(t, srv, path, tt.part)
			f := newFetcher(0)
			f.SHA256 = true
			res := f.FetchWith(context.Background(), srv.URL+path, "h", dest, download.Options{Checksum: mustChecksum(t, sumOf(tt.algo, body))})
			if ranged := srv.URLStats(path).Ranged; ranged != 1 || res.Bytes != int64(len(body)-len(tt.part)) {
				t.Fatalf("%d ranged requests, %d bytes; want the download resumed: 1, %d", ranged, res.Bytes, len(body)-len(tt.part))
			}
			if !tt.right {
				if res.Status != download.Failed || !strings.Contains(fmt.Sprint(res.Err), "checksum mismatch") {
					t.Fatalf("got %s (%v); want failed on the checksum", res.Status, res.Err)
				}
				noFiles(t, dest)
				return
			}
			if res.Status != download.Done {
				t.Fatalf("got %s (%v); want done", res.Status, res.Err)
			}
			wantBody(t, dest, body)
			if want := sumOf("sha256", body)[7:]; res.SHA256 != want {
				t.Errorf("Result.SHA256 %s; want the whole file's, %s", res.SHA256, want)
			}
		})
	}
}

// A download that resumes within the run (a cut connection) is hashed over
// the bytes of every attempt.
func TestChecksumAcrossAttempts(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	const path = "/f/t?size=1000000&truncate=600000"
	body := fetchtest.Body("t", 1000000)
	dest := filepath.Join(t.TempDir(), "file")
	f := newFetcher(2)
	f.SHA256 = true
	res := f.FetchWith(context.Background(), srv.URL+path, "h", dest, download.Options{Checksum: mustChecksum(t, sumOf("sha1", body))})
	if res.Status != download.Done || res.Attempts != 2 || srv.URLStats(path).Ranged != 1 {
		t.Fatalf("got %s after %d attempts, %d ranged (%v); want done after a resumed second attempt", res.Status, res.Attempts, srv.URLStats(path).Ranged, res.Err)
	}
	wantBody(t, dest, body)
	if want := sumOf("sha256", body)[7:]; res.SHA256 != want {
		t.Errorf("Result.SHA256 %s; want %s", res.SHA256, want)
	}
}

// A final file already there is read and checked before it counts as done,
// without a request: the right bytes are Exists, wrong ones fail the line and
// are left as they are, with what to do; Force downloads it again.
func TestChecksumExists(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	const path = "/f/e?size=100000"
	body := fetchtest.Body("e", 100000)
	sum := download.Options{Checksum: mustChecksum(t, sumOf("sha256", body))}
	dest := filepath.Join(t.TempDir(), "file")
	write := func(b []byte) {
		if err := os.WriteFile(dest, b, 0o666); err != nil {
			t.Fatal(err)
		}
	}

	write(body)
	f := newFetcher(0)
	f.SHA256 = true
	res := f.FetchWith(context.Background(), srv.URL+path, "h", dest, sum)
	if res.Status != download.Exists || srv.TotalRequests() != 0 {
		t.Fatalf("right bytes: %s with %d requests (%v); want exists with none", res.Status, srv.TotalRequests(), res.Err)
	}
	if res.SHA256 != sumOf("sha256", body)[7:] {
		t.Errorf("right bytes: Result.SHA256 %q; want the file's, read for the checksum", res.SHA256)
	}

	wrong := append([]byte(nil), body...)
	wrong[500] ^= 1
	write(wrong)
	res = newFetcher(0).FetchWith(context.Background(), srv.URL+path, "h", dest, sum)
	msg := fmt.Sprint(res.Err)
	if res.Status != download.Failed || res.Fatal || srv.TotalRequests() != 0 {
		t.Fatalf("wrong bytes: %s, fatal %v, %d requests (%v); want failed, not fatal, no request", res.Status, res.Fatal, srv.TotalRequests(), res.Err)
	}
	for _, s := range []string{"already there", sumOf("sha256", wrong)[7:], sumOf("sha256", body)[7:], "--force"} {
		if !strings.Contains(msg, s) {
			t.Errorf("wrong bytes: error %q does not say %q", msg, s)
		}
	}
	if got, _ := os.ReadFile(dest); string(got) != string(wrong) {
		t.Errorf("wrong bytes: the file was changed; want it left as it is")
	}

	f = newFetcher(0)
	f.Force = true
	if res := f.FetchWith(context.Background(), srv.URL+path, "h", dest, sum); res.Status != download.Done {
		t.Fatalf("wrong bytes, Force: %s (%v); want done", res.Status, res.Err)
	}
	wantBody(t, dest, body)
}

// Result.SHA256 is the file's when asked for, and not computed otherwise.
func TestSHA256(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	for _, tt := range []struct {
		path string
		size int
	}{{"/f/s?size=0", 0}, {"/f/s?size=1", 1}, {"/f/s?size=3000000", 3000000}, {"/f/s?size=100000&nolength=1", 100000}} {
		for _, on := range []bool{true, false} {
			f := newFetcher(0)
			f.SHA256 = on
			res, dest := fetch(t, f, srv, tt.path)
			if res.Status != download.Done {
				t.Fatalf("%s: %s (%v)", tt.path, res.Status, res.Err)
			}
			got, _ := os.ReadFile(dest)
			want := ""
			if on {
				want = sumOf("sha256", got)[7:]
			}
			if res.SHA256 != want || len(got) != tt.size {
				t.Errorf("%s, SHA256 %v: Result.SHA256 %q of %d bytes; want %q of %d", tt.path, on, res.SHA256, len(got), want, tt.size)
			}
		}
	}
}

// closedPort returns a URL on 127.0.0.1 where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String() + "/gone"
	l.Close()
	return u
}

// A transport error does not name the URL (the message of a failure puts it
// first already), except a redirect's target, which is not the line's.
func TestTransportErrorNamesNoURL(t *testing.T) {
	gone := closedPort(t)
	res := newFetcher(0).Fetch(context.Background(), gone, "h", filepath.Join(t.TempDir(), "file"))
	msg := fmt.Sprint(res.Err)
	if res.Status != download.Failed || strings.Contains(msg, "/gone") || !strings.Contains(msg, "connection refused") {
		t.Errorf("refused: %s, %q; want failed, with the reason and without the URL", res.Status, msg)
	}

	redirect := httptest.NewServer(http.RedirectHandler(gone, http.StatusFound))
	defer redirect.Close()
	res = newFetcher(0).Fetch(context.Background(), redirect.URL+"/a", "h", filepath.Join(t.TempDir(), "file"))
	msg = fmt.Sprint(res.Err)
	if want := "after a redirect to " + gone + ": "; res.Status != download.Failed || !strings.HasPrefix(msg, want) || strings.Contains(msg, redirect.URL) || strings.Contains(msg, `Get "`) {
		t.Errorf("redirected: %s, %q; want failed, starting %q, without the line's URL", res.Status, msg, want)
	}
}
