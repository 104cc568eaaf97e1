package cmd_test

// Checksums and the sha256 of --report over downloads resumed by a second
// run of the real ckfetch (the testscript fetch_checksum covers the rest).

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ck-tools/ck/lib/fetchtest"
)

// sha256sum is the digest of the file name as sha256sum prints it, or as Go
// computes it where there is no sha256sum.
func sha256sum(t *testing.T, name string) string {
	t.Helper()
	if bin, err := exec.LookPath("sha256sum"); err == nil {
		out, err := exec.Command(bin, name).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Fields(string(out))[0]
	}
	return fmt.Sprintf("%x", sha256.Sum256(read(t, name)))
}

// TestFetchSumResumed: a download cut in a first run and resumed by a second
// is checked, and reported, over its whole file: --report's sha256 is
// sha256sum's of the file, for it and for one resumed within the run; and a
// .part whose earlier bytes were spoiled fails the line's checksum (its bytes
// are hashed, not only those of the second run) and is dropped.
func TestFetchSumResumed(t *testing.T) {
	t.Parallel()
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	const size = 3_000_000
	across := srv.URL + "/f/a?size=3000000&truncate=1000000"
	within := srv.URL + "/f/w?size=3000000&truncate=1000000"
	spoiled := srv.URL + "/f/s?size=3000000&truncate=1000000"
	sum := func(name string) string { return fmt.Sprintf("sha256=%x", sha256.Sum256(fetchtest.Body(name, size))) }
	first := across + "\ta.bin\n" + spoiled + "\ts.bin\t" + sum("s") + "\n"
	if _, stderr, st := runFetch(t, dir, first, "-q", "-d", "out", "--retries", "0", "--failed", "failed.txt"); st != "exit 1" {
		t.Fatalf("first run: %s; want exit 1 (both cut)\nstderr:\n%s", st, stderr)
	}
	for _, name := range []string{"a.bin.part", "s.bin.part"} {
		if n := fileSize(filepath.Join(dir, "out", name)); n != 1_000_000 {
			t.Fatalf("after the first run: %s has %d bytes; want the 1000000 received", name, n)
		}
	}
	// One byte of the kept bytes changes: the size, and the validator
	// recorded with the .part, stay as they were.
	f, err := os.OpenFile(filepath.Join(dir, "out", "s.bin.part"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{fetchtest.Body("s", 501)[500] ^ 0xff}, 500); err != nil {
		t.Fatal(err)
	}
	f.Close()

	second := across + "\ta.bin\t\n" + within + "\tw.bin\t" + sum("w") + "\n" + spoiled + "\ts.bin\t" + sum("s") + "\n"
	out, stderr, st := runFetch(t, dir, second, "-q", "-d", "out", "--retries", "1", "--failed", "failed2.txt", "--report", "report.jsonl")
	if st != "exit 1" || out != across+"\ta.bin\t\n"+within+"\tw.bin\t"+sum("w")+"\n" {
		t.Fatalf("second run: %s, echoed %q; want exit 1 and the first two lines\nstderr:\n%s", st, out, stderr)
	}
	bad := fetchtest.Body("s", size)
	bad[500] ^= 0xff
	if want := fmt.Sprintf("ckfetch: %s: checksum mismatch: the download's sha256 is %x, not %s as the line says; it was not kept\n", spoiled, sha256.Sum256(bad), sum("s")[7:]); !strings.Contains(stderr, want) {
		t.Errorf("second run: stderr does not have\n%s\nstderr:\n%s", want, stderr)
	}
	for _, name := range []string{"s.bin", "s.bin.part", "s.bin.part.etag"} {
		if _, err := os.Lstat(filepath.Join(dir, "out", name)); err == nil {
			t.Errorf("out/%s is there after the checksum failed; want no file", name)
		}
	}
	for _, u := range []string{across, within} {
		if srv.URLStats(u).Ranged != 1 {
			t.Errorf("%s: %d ranged requests; want 1 (resumed)", u, srv.URLStats(u).Ranged)
		}
	}

	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(read(t, filepath.Join(dir, "report.jsonl"))), "\n"), "\n") {
		var r struct {
			URL, Status, SHA256 string
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("report.jsonl: %v: %s", err, line)
		}
		got[r.URL] = r.Status + " " + r.SHA256
	}
	for u, name := range map[string]string{across: "a.bin", within: "w.bin"} {
		file := filepath.Join(dir, "out", name)
		if !bytes.Equal(read(t, file), fetchtest.Body(name[:1], size)) {
			t.Errorf("out/%s is not the server's bytes", name)
		}
		if want := "done " + sha256sum(t, file); got[u] != want {
			t.Errorf("report for %s: %q; want %q (sha256sum of out/%s)", u, got[u], want, name)
		}
	}
	if got[spoiled] != "failed " {
		t.Errorf("report for the spoiled line: %q; want failed without a sha256", got[spoiled])
	}
}
