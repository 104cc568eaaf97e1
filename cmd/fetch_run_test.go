package cmd_test

// Process-level tests of ckfetch's run: its shutdown after a signal when the
// next command of the pipeline goes away at the same time.

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ck-tools/ck/lib/fetchtest"
)

// TestFetchSignalThenClosedStdout: Ctrl-C reaches every process of the
// pipeline at once, so the reader of ckfetch's stdout may go away while
// ckfetch is still echoing what completed. ckfetch then still exits with the
// signal's status (130, 143) and prints its "interrupted" message and its
// summary, rather than dying of SIGPIPE or exiting 141.
//
// To have completed lines left to echo after the signal, the --report file
// is a FIFO that the test does not read at first: ckfetch's main loop blocks
// writing to it once its pipe buffer is full, while the downloads finish
// behind it; the last line stalls, so a download is in flight when the
// signal comes. The test sends the signal, closes stdout, then reads the
// FIFO, which lets ckfetch go on: its next echo meets the closed pipe. The
// test closes stdout only once ckfetch has acted on the signal (it ended the
// stalled request): a pipe closed before ckfetch sees the signal is a plain
// closed stdout, 141.
func TestFetchSignalThenClosedStdout(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		want string
	}{
		{syscall.SIGINT, "exit 130"},
		{syscall.SIGTERM, "exit 143"},
	} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			t.Parallel()
			// fetchtest's handler behind a server that tells when the
			// stalled request ended: then ckfetch has acted on the signal.
			ft := fetchtest.New()
			t.Cleanup(ft.Close)
			hangEnded := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ft.ServeHTTP(w, r)
				if strings.HasPrefix(r.URL.Path, "/f/hang") {
					close(hangEnded)
				}
			}))
			t.Cleanup(srv.Close)
			dir := t.TempDir()
			report := filepath.Join(dir, "report.fifo")
			if err := syscall.Mkfifo(report, 0o666); err != nil {
				t.Fatal(err)
			}
			// Opened read-write, so neither end waits for the other.
			fifo, err := os.OpenFile(report, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { fifo.Close() })
			// About 300 bytes of report per line: 400 lines overfill the
			// 64 KiB of a pipe.
			const n = 400
			var input strings.Builder
			for i := range n {
				fmt.Fprintf(&input, "%s/f/s%d?size=1\n", srv.URL, i)
			}
			hang := srv.URL + "/f/hang?size=1000&stall=0"
			input.WriteString(hang + "\n")

			p := startFetch(t, dir, strings.NewReader(input.String()), "-d", "out", "-j", "4", "--report", report)
			waitFor(t, "every small line to be served, the last one in flight and the report's pipe full", func() bool {
				queued, err := unix.IoctlGetInt(int(fifo.Fd()), unix.TIOCINQ)
				return err == nil && queued > 60_000 && ft.TotalRequests() == n+1 && ft.Requests(hang) == 1
			})
			if err := p.cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			<-hangEnded // ckfetch is shutting down
			p.out.Close()
			// Let the main loop go on: it writes the rest of the report and
			// echoes into the closed pipe.
			go io.Copy(io.Discard, fifo)
			got := how(p.wait(watchdog))
			stderr := p.stderr.String()
			if got != tc.want {
				t.Errorf("ckfetch ended with %s after %s and a closed stdout; want %s\nstderr:\n%s", got, tc.sig, tc.want, stderr)
			}
			if !strings.Contains(stderr, "interrupted") {
				t.Errorf("stderr does not say it was interrupted:\n%s", stderr)
			}
			// Nearly all lines are done; the signal may cancel one still
			// finishing.
			if !regexp.MustCompile(`(?m)^ckfetch: [0-9]+ done, 0 already there, 0 failed;`).MatchString(stderr) {
				t.Errorf("stderr has no summary line:\n%s", stderr)
			}
		})
	}
}
