package fetch_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/fetch"
	"github.com/ck-tools/ck/lib/fetchtest"
)

// runMain runs fetch.Main in dir's "out" and returns its status, stdout and
// stderr.
func runMain(t *testing.T, ctx context.Context, stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = fetch.Main(ctx, args, stdin, &out, &errb)
	return code, out.String(), errb.String()
}

// TestFetchFileInMissingDir: a --report or --failed file in a directory
// that does not exist is a usage error naming the file and what to do, not a
// crash, and nothing is downloaded.
func TestFetchFileInMissingDir(t *testing.T) {
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	for _, flag := range []string{"--report", "--failed"} {
		t.Run(flag, func(t *testing.T) {
			dir := t.TempDir()
			name := filepath.Join(dir, "no", "such", "dir", "file.txt")
			code, stdout, stderr := runMain(t, context.Background(), strings.NewReader(srv.URL+"/f/a?size=10\n"),
				"-q", "-d", filepath.Join(dir, "out"), flag, name)
			if code != cli.ExitUsage || stdout != "" {
				t.Errorf("status %d, stdout %q; want %d and nothing echoed", code, stdout, cli.ExitUsage)
			}
			want := regexp.MustCompile(`^ckfetch: ` + regexp.QuoteMeta(flag) + ` ` + regexp.QuoteMeta(name) + `: .*no such file or directory.*create the directory`)
			if !want.MatchString(stderr) {
				t.Errorf("stderr %q; want it to match %s", stderr, want)
			}
			if n := srv.TotalRequests(); n != 0 {
				t.Errorf("%d requests; want none", n)
			}
		})
	}
}

// TestFetchFailedIsInput: ckfetch --failed F < F would read its own
// failures back forever; it is refused, whatever path names F.
func TestFetchFailedIsInput(t *testing.T) {
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	failed := filepath.Join(dir, "failed.txt")
	if err := os.WriteFile(failed, []byte("# HTTP 404\n"+srv.URL+"/status/404\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(failed, filepath.Join(dir, "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o777); err != nil {
		t.Fatal(err)
	}
	for name, arg := range map[string]string{
		"same path":  failed,
		"symlink":    filepath.Join(dir, "link.txt"),
		"other path": dir + "/sub/../failed.txt",
	} {
		t.Run(name, func(t *testing.T) {
			stdin, err := os.Open(failed)
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			code, stdout, stderr := runMain(t, context.Background(), stdin, "-q", "-d", filepath.Join(dir, "out"), "--failed", arg)
			if code != cli.ExitUsage || stdout != "" {
				t.Errorf("status %d, stdout %q; want %d and nothing echoed", code, stdout, cli.ExitUsage)
			}
			want := regexp.MustCompile(`^ckfetch: --failed ` + regexp.QuoteMeta(arg) + ` is also the input.*copy`)
			if !want.MatchString(stderr) {
				t.Errorf("stderr %q; want it to match %s", stderr, want)
			}
		})
	}
	if n := srv.TotalRequests(); n != 0 {
		t.Errorf("%d requests; want none", n)
	}
	// Retrying from a copy works.
	b, err := os.ReadFile(failed)
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runMain(t, context.Background(), bytes.NewReader(b), "-q", "-d", filepath.Join(dir, "out"), "--retries", "0", "--failed", failed)
	if code != cli.ExitFailure || srv.TotalRequests() != 1 {
		t.Errorf("retry from a copy: status %d, %d requests; want %d and 1\nstderr:\n%s", code, srv.TotalRequests(), cli.ExitFailure, stderr)
	}
}

// TestFetchFailedTornTail: a --failed file whose last record was torn by a
// crash is repaired when it is opened, so the next record starts on a line
// of its own; the fragment is kept in FILE.torn.
func TestFetchFailedTornTail(t *testing.T) {
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	failed := filepath.Join(dir, "failed.txt")
	const before = "# HTTP 404 Not Found\nhttp://x/a\n# reason\nhttp://x/tor"
	if err := os.WriteFile(failed, []byte(before), 0o666); err != nil {
		t.Fatal(err)
	}
	bad := srv.URL + "/status/404"
	code, stdout, stderr := runMain(t, context.Background(), strings.NewReader(srv.URL+"/f/ok?size=10\n"+bad+"\n"),
		"-q", "-d", filepath.Join(dir, "out"), "--retries", "0", "--failed", failed)
	if code != cli.ExitFailure || stdout != srv.URL+"/f/ok?size=10\n" {
		t.Fatalf("status %d, stdout %q; want %d and the good line\nstderr:\n%s", code, stdout, cli.ExitFailure, stderr)
	}
	got, err := os.ReadFile(failed)
	if err != nil {
		t.Fatal(err)
	}
	want := "# HTTP 404 Not Found\nhttp://x/a\n# HTTP 404 Not Found\n" + bad + "\n"
	if string(got) != want {
		t.Errorf("%s:\n%q\nwant\n%q", failed, got, want)
	}
	torn, err := os.ReadFile(failed + ".torn")
	if err != nil || string(torn) != "# reason\nhttp://x/tor\n" {
		t.Errorf("%s.torn: %q, %v; want the fragment %q", failed, torn, err, "# reason\nhttp://x/tor\n")
	}
	if !strings.Contains(stderr, failed+": ") || !strings.Contains(stderr, failed+".torn") {
		t.Errorf("stderr %q; want a warning naming %s and %s.torn", stderr, failed, failed)
	}
	// The repaired file is valid input: its lines parse as records.
	for i, l := range strings.Split(strings.TrimSuffix(string(got), "\n"), "\n") {
		if (i%2 == 0) != strings.HasPrefix(l, "# ") {
			t.Errorf("line %d %q: want reason lines and URL lines in turn", i+1, l)
		}
	}
}
