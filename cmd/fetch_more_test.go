package cmd_test

// Two more promises of SPEC.md that only a real process shows: a connect
// that hangs is given up after --connect-timeout and retried, and progress
// is drawn when stderr is a terminal.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ck-tools/ck/lib/fetchtest"
	"github.com/ck-tools/ck/lib/outname"
)

// hungListener returns the address of a TCP listener on 127.0.0.1 to which
// a connect hangs: its backlog is 0, it never accepts, and its accept queue
// is filled beforehand, so Linux drops further SYNs. It skips the test if a
// connect to it still succeeds.
func hungListener(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatalf("listen: %v", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
	// Fill the accept queue; the second dial may already hang, which is
	// fine. The connections stay open until the test ends.
	for range 2 {
		if c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err == nil {
		c.Close()
		t.Skipf("the kernel still completes connects to %s with a full accept queue: no hanging connect to test", addr)
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Skipf("a connect to %s fails with %v, not a timeout: no hanging connect to test", addr, err)
	}
	return addr
}

// TestFetchConnectTimeout: a connect that hangs is given up after
// --connect-timeout and retried (it is retryable); after the last attempt
// the line fails, with the URL and the timeout on stderr, no file and no
// .part left. The run goes on: the next, healthy URL is downloaded and,
// with --failed, echoed, and the failure file lists the hung URL after a
// '# ' reason line.
func TestFetchConnectTimeout(t *testing.T) {
	t.Parallel()
	hung := "http://" + hungListener(t) + "/f/hung?size=10"
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	healthy := srv.URL + "/f/healthy?size=100"
	dir := t.TempDir()

	p := startFetch(t, dir, strings.NewReader(hung+"\n"+healthy+"\n"),
		"--connect-timeout", "300ms", "--retries", "1", "--backoff", "1ms", "-d", "out",
		"--failed", "failed.txt", "--report", "report.jsonl")
	// A failure timeout only: the run takes two connect timeouts.
	st := how(p.wait(30 * time.Second))
	out := p.rest()
	stderr := p.stderr.String()
	if st != "exit 1" {
		t.Errorf("ckfetch ended with %s; want exit 1 (one URL failed)\nstderr:\n%s", st, stderr)
	}
	if !regexp.MustCompile(`(?m)^ckfetch: ` + regexp.QuoteMeta(hung) + `: .*(?i:timeout|timed out)`).MatchString(stderr) {
		t.Errorf("stderr does not name %s and a timeout:\n%s", hung, stderr)
	}
	if out != healthy+"\n" {
		t.Errorf("echoed %q; want only the healthy line %q", out, healthy+"\n")
	}
	if got, err := os.ReadFile(outPath(t, dir, healthy)); err != nil || !bytes.Equal(got, fetchtest.Body("healthy", 100)) {
		t.Errorf("the healthy URL's file has %d bytes (%v) that are not the server's 100", len(got), err)
	}
	for _, name := range []string{outPath(t, dir, hung), outPath(t, dir, hung) + outname.PartSuffix} {
		if _, err := os.Stat(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v; want no such file after a failed connect", name, err)
		}
	}
	filepath.WalkDir(filepath.Join(dir, "out"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), outname.PartSuffix) {
			t.Errorf("%s is left", path)
		}
		return nil
	})

	failed := strings.Split(strings.TrimSuffix(string(read(t, filepath.Join(dir, "failed.txt"))), "\n"), "\n")
	if len(failed) != 2 || !strings.HasPrefix(failed[0], "# ") || len(failed[0]) == 2 || failed[1] != hung {
		t.Errorf("failed.txt: %q; want a '# reason' line and %s", failed, hung)
	}

	got := map[string]string{}
	for i, line := range strings.Split(strings.TrimSuffix(string(read(t, filepath.Join(dir, "report.jsonl"))), "\n"), "\n") {
		var r struct {
			URL      string `json:"url"`
			Status   string `json:"status"`
			Attempts int    `json:"attempts"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("report.jsonl:%d: %v: %s", i+1, err, line)
		}
		got[r.URL] = fmt.Sprintf("%s, %d attempts", r.Status, r.Attempts)
	}
	want := map[string]string{hung: "failed, 2 attempts", healthy: "done, 1 attempts"}
	if !maps.Equal(got, want) {
		t.Errorf("report: %v; want %v (--retries 1: two attempts at the hung URL)", got, want)
	}
}

// openPTY opens a pseudo-terminal of 120x40 and returns its master and
// slave ends.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatalf("open pty slave: %v", err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 120}); err != nil {
		m.Close()
		s.Close()
		t.Fatalf("set pty size: %v", err)
	}
	return m, s
}

// fetchOnTerminal runs ckfetch in dir with stderr on a pseudo-terminal and
// returns what it wrote there, and how it ended.
func fetchOnTerminal(t *testing.T, dir, stdin string, args ...string) (terminal, status string) {
	t.Helper()
	master, slave := openPTY(t)
	defer master.Close()
	cmd := exec.Command("ckfetch", args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stderr = slave // an *os.File: the child gets the terminal itself
	if err := cmd.Start(); err != nil {
		slave.Close()
		t.Fatal(err)
	}
	slave.Close()
	// The master reads until the last slave is closed (EIO), so the buffer
	// holds everything once the child has ended.
	var buf bytes.Buffer
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			buf.Write(b[:n])
			if err != nil {
				return
			}
		}
	}()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(watchdog):
		cmd.Process.Kill()
		<-done
		t.Fatalf("ckfetch %v still running %s later; killed", args, watchdog)
	}
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatalf("the terminal was not closed 10 s after ckfetch ended")
	}
	return buf.String(), how(cmd.ProcessState)
}

// TestFetchProgressTerminal: with stderr a terminal, ckfetch draws its
// progress line (done, already there, failed, in flight, bytes, rate) while
// a download of about two seconds runs, at least once at its 250 ms refresh,
// and ends with the summary line; with -q it writes nothing there.
func TestFetchProgressTerminal(t *testing.T) {
	t.Parallel()
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	// The progress line; "in flight" is in it and not in the summary.
	progressLine := regexp.MustCompile(`ckfetch: \d+ done, \d+ already there, \d+ failed, 1 in flight, [^,\r\n]+, [^,\r\n]+/s`)
	summaryLine := regexp.MustCompile(`ckfetch: 1 done, 0 already there, 0 failed; [^\r\n]* in [^\r\n]* \([^\r\n]*/s\)`)

	t.Run("terminal", func(t *testing.T) {
		t.Parallel()
		slow := srv.URL + "/f/slow?size=2000000&slow=1000000&tag=terminal"
		terminal, st := fetchOnTerminal(t, t.TempDir(), slow+"\n", "-d", "out")
		if st != "exit 0" {
			t.Fatalf("ckfetch: %s; want exit 0\nterminal:\n%q", st, terminal)
		}
		progress := progressLine.FindAllStringIndex(terminal, -1)
		if len(progress) == 0 {
			t.Errorf("no progress line with 1 in flight on the terminal:\n%q", terminal)
		}
		summary := summaryLine.FindStringIndex(terminal)
		if summary == nil {
			t.Errorf("no summary line on the terminal:\n%q", terminal)
		}
		if len(progress) > 0 && summary != nil && progress[len(progress)-1][0] > summary[0] {
			t.Errorf("progress drawn after the summary line:\n%q", terminal)
		}
		t.Logf("%d progress lines drawn", len(progress))
	})

	t.Run("-q", func(t *testing.T) {
		t.Parallel()
		slow := srv.URL + "/f/slow?size=2000000&slow=1000000&tag=quiet"
		terminal, st := fetchOnTerminal(t, t.TempDir(), slow+"\n", "-q", "-d", "out")
		if st != "exit 0" || terminal != "" {
			t.Errorf("ckfetch -q: %s, wrote %q on the terminal; want exit 0 and nothing", st, terminal)
		}
	})
}
