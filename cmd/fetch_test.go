package cmd_test

// Process-level tests of ckfetch: what only a real process shows (signals,
// a closed stdout, peak memory, request timing seen by a server), and the
// exit statuses of lib/fetch.Main. The testscript files cover echo order,
// names, bad lines and failures; these do not repeat them.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/fetch"
	"github.com/ck-tools/ck/lib/fetchtest"
	"github.com/ck-tools/ck/lib/outname"
)

// watchdog is how long any ckfetch process of these tests may live. It is a
// failure timeout that keeps a hung process from hanging the test, not a
// performance bound.
const watchdog = 2 * time.Minute

// proc is a running ckfetch whose stdout is a pipe the test reads (or
// closes) line by line.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    *os.File // read end of stdout
	lines  *bufio.Reader
	stderr *lockedBuffer
	killed atomic.Bool
	dog    *time.Timer
	waited chan struct{} // closed when the process has ended
}

// lockedBuffer is a bytes.Buffer safe for the copying goroutine of exec.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startFetch starts ckfetch in dir with args and stdin.
func startFetch(t *testing.T, dir string, stdin io.Reader, args ...string) *proc {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, out: r, lines: bufio.NewReaderSize(r, 1<<16), stderr: &lockedBuffer{}, waited: make(chan struct{})}
	p.cmd = exec.Command("ckfetch", args...)
	p.cmd.Dir = dir
	p.cmd.Stdin = stdin
	p.cmd.Stdout = w
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	p.dog = time.AfterFunc(watchdog, func() { p.killed.Store(true); p.cmd.Process.Kill() })
	go func() { p.cmd.Wait(); close(p.waited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.waited
		p.dog.Stop()
		r.Close()
	})
	return p
}

// line returns the next line echoed on stdout, without its newline; "" at
// the end of stdout.
func (p *proc) line() string {
	p.t.Helper()
	s, err := p.lines.ReadString('\n')
	if err != nil && s != "" {
		p.t.Fatalf("stdout ends in a line without newline: %q", s)
	}
	return strings.TrimSuffix(s, "\n")
}

// rest returns what is left on stdout until ckfetch closes it.
func (p *proc) rest() string {
	b, err := io.ReadAll(p.lines)
	if err != nil {
		p.t.Fatalf("read stdout: %v", err)
	}
	return string(b)
}

// ended reports whether ckfetch has ended.
func (p *proc) ended() bool {
	select {
	case <-p.waited:
		return true
	default:
		return false
	}
}

// wait waits for ckfetch to end, and fails the test if it is still running
// after limit (killing it then). limit is a failure timeout.
func (p *proc) wait(limit time.Duration) *os.ProcessState {
	p.t.Helper()
	select {
	case <-p.waited:
	case <-time.After(limit):
		p.cmd.Process.Kill()
		<-p.waited
		p.t.Fatalf("ckfetch %v still running %s later; killed\nstderr:\n%s", p.cmd.Args[1:], limit, p.stderr)
	}
	if p.killed.Load() {
		p.t.Fatalf("ckfetch %v killed by the test's watchdog after %s\nstderr:\n%s", p.cmd.Args[1:], watchdog, p.stderr)
	}
	return p.cmd.ProcessState
}

// how says how a process ended: "exit N" or "signal NAME".
func how(ps *os.ProcessState) string {
	ws := ps.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return "signal " + ws.Signal().String()
	}
	return fmt.Sprintf("exit %d", ws.ExitStatus())
}

// waitFor polls cond until it holds, and fails the test after a generous
// bound (a failure timeout, not a performance bound).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	const bound = 60 * time.Second
	for deadline := time.Now().Add(bound); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", bound, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// outPath is where ckfetch -d out, run in dir, puts the file of url.
func outPath(t *testing.T, dir, url string) string {
	t.Helper()
	name, err := outname.FromURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "out", filepath.FromSlash(name))
}

func fileSize(name string) int64 {
	st, err := os.Stat(name)
	if err != nil {
		return -1
	}
	return st.Size()
}

// TestFetchSignalKeepsPart: the first SIGINT (SIGTERM) in the middle of a
// download stops ckfetch with status 130 (143). The line already echoed was
// flushed at once, nothing after the interrupted download is echoed (not
// even a later line whose file is complete), and the partial file is kept.
// The same command then resumes it with one Range request and ends with the
// server's exact bytes, the server having sent each byte once.
func TestFetchSignalKeepsPart(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		want int
	}{
		{syscall.SIGINT, cli.ExitInterrupted},
		{syscall.SIGTERM, cli.ExitTerminated},
	} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			t.Parallel()
			srv := fetchtest.New()
			t.Cleanup(srv.Close)
			dir := t.TempDir()
			// The big download sends its first stallAt bytes and then stalls
			// until the client goes away, so the interrupt always lands in
			// the middle of it; the rerun's request does not stall.
			const size, stallAt = 20_000_000, 1_000_000
			small := srv.URL + "/f/small?size=100"
			big := fmt.Sprintf("%s/f/big?size=%d&stall=%d", srv.URL, size, stallAt)
			later := srv.URL + "/f/later?size=100"
			input := small + "\n" + big + "\n" + later + "\n"
			part := outPath(t, dir, big) + outname.PartSuffix

			p := startFetch(t, dir, strings.NewReader(input), "-d", "out")
			if got := p.line(); got != small {
				t.Fatalf("first echoed line %q; want %q (echoed and flushed before the big download ends)", got, small)
			}
			waitFor(t, "the .part file to hold the bytes sent before the stall", func() bool { return fileSize(part) == stallAt })
			waitFor(t, "the later file to be complete", func() bool { return fileSize(outPath(t, dir, later)) == 100 })
			if err := p.cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			if rest := p.rest(); rest != "" {
				t.Errorf("echoed after the interrupted download: %q; want nothing", rest)
			}
			if got, want := how(p.wait(30*time.Second)), fmt.Sprintf("exit %d", tc.want); got != want {
				t.Errorf("ckfetch ended with %s; want %s\nstderr:\n%s", got, want, p.stderr)
			}
			if !strings.Contains(p.stderr.String(), "interrupted") {
				t.Errorf("stderr does not say it was interrupted:\n%s", p.stderr)
			}
			if got := fileSize(part); got != stallAt {
				t.Errorf("after the signal the .part file has %d bytes; want the %d received", got, stallAt)
			}
			if _, err := os.Stat(outPath(t, dir, big)); err == nil {
				t.Errorf("the interrupted download is under its final name")
			}

			// The rerun resumes the .part file.
			p = startFetch(t, dir, strings.NewReader(input), "-q", "-d", "out")
			if got := p.rest(); got != input {
				t.Errorf("rerun echoed %q; want every line %q", got, input)
			}
			if got := how(p.wait(watchdog)); got != "exit 0" {
				t.Errorf("rerun ended with %s; want exit 0\nstderr:\n%s", got, p.stderr)
			}
			st := srv.URLStats(big)
			if st.Requests != 2 || st.Ranged != 1 {
				t.Errorf("the server got %d requests for the big file, %d with Range; want 2 and 1", st.Requests, st.Ranged)
			}
			if st.Bytes != size {
				t.Errorf("the server sent %d bytes of the big file over both runs; want each of its %d bytes once", st.Bytes, size)
			}
			if got, err := os.ReadFile(outPath(t, dir, big)); err != nil || !bytes.Equal(got, fetchtest.Body("big", size)) {
				t.Errorf("the resumed file has %d bytes (%v) that are not the server's %d bytes", len(got), err, size)
			}
			if _, err := os.Stat(part); err == nil {
				t.Errorf("%s is left after the rerun", part)
			}
		})
	}
}

// TestFetchSecondSignal: a second SIGINT ends ckfetch at once even when the
// first could not end it, here because it is still echoing into a pipe that
// nobody reads (a slow next command): after the first signal it waits to
// write the lines whose files are complete, and the second kills it.
func TestFetchSecondSignal(t *testing.T) {
	t.Parallel()
	// /hang is answered only when the client goes away: its end tells that
	// ckfetch took the first signal (the signal handler is reset before the
	// run's context, which the request carries, is cancelled).
	var seen, gone sync.Once
	hangSeen, hangGone := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			seen.Do(func() { close(hangSeen) })
			<-r.Context().Done()
			gone.Do(func() { close(hangGone) })
			return
		}
		io.WriteString(w, "x")
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	// Long lines fill the pipe after a few dozen echoes.
	const n = 200
	pad := strings.Repeat("x", 1000)
	var input strings.Builder
	var urls []string
	for i := range n {
		u := fmt.Sprintf("%s/e?i=%d&pad=%s", srv.URL, i, pad)
		urls = append(urls, u)
		input.WriteString(u + "\n")
	}
	input.WriteString(srv.URL + "/hang\n")
	p := startFetch(t, dir, strings.NewReader(input.String()), "-q", "-d", "out", "-j", "8", "--per-host", "8")
	capacity, err := unix.FcntlInt(p.out.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	if capacity >= input.Len() {
		t.Skipf("a pipe holds %d bytes here: too many to fill", capacity)
	}
	waitFor(t, "every file to be downloaded", func() bool {
		for _, u := range urls {
			if fileSize(outPath(t, dir, u)) != 1 {
				return false
			}
		}
		return true
	})
	// Every file but /hang's is done, and stdout fills up: ckfetch gets
	// stuck writing the lines it has to echo.
	waitFor(t, "stdout to fill up", func() bool {
		queued, err := unix.IoctlGetInt(int(p.out.Fd()), unix.TIOCINQ)
		return err == nil && queued >= capacity/2
	})
	select {
	case <-hangSeen:
	case <-time.After(60 * time.Second):
		t.Fatalf("ckfetch did not request /hang")
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hangGone:
	case <-time.After(30 * time.Second):
		t.Fatalf("ckfetch did not cancel its request 30 s after the first SIGINT")
	}
	if p.ended() {
		// Not stuck after all: then it must have ended as after one signal.
		if got := how(p.wait(time.Second)); got != "exit 130" {
			t.Fatalf("after one SIGINT ckfetch ended with %s; want exit 130", got)
		}
		t.Skip("ckfetch ended after the first signal; no second signal to test")
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if got := how(p.wait(10 * time.Second)); got != "signal interrupt" {
		t.Errorf("after the second SIGINT ckfetch ended with %s; want signal interrupt\nstderr:\n%s", got, p.stderr)
	}
}

// TestFetchClosedStdout: when the reader of stdout goes away while a long
// download is in flight (one that would never end by itself), ckfetch stops
// with status 141 instead of running on; `ckfetch | head -n 1` returns.
func TestFetchClosedStdout(t *testing.T) {
	t.Parallel()
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	// urls returns a small URL and one whose first request stalls after its
	// headers until the client goes away, distinct for each subtest.
	urls := func(tag string) (small, hang, input string) {
		small = srv.URL + "/f/small?size=10&tag=" + tag
		hang = srv.URL + "/f/hang?size=1000&stall=0&tag=" + tag
		return small, hang, small + "\n" + hang + "\n"
	}

	t.Run("pipe", func(t *testing.T) {
		t.Parallel()
		small, hang, input := urls("pipe")
		p := startFetch(t, t.TempDir(), strings.NewReader(input), "-d", "out")
		if got := p.line(); got != small {
			t.Fatalf("first line %q; want %q", got, small)
		}
		waitFor(t, "the stalled download to be in flight", func() bool { return srv.Requests(hang) == 1 })
		p.out.Close()
		if got := how(p.wait(10 * time.Second)); got != "exit 141" && got != "signal broken pipe" {
			t.Errorf("ckfetch ended with %s after its stdout was closed; want exit 141\nstderr:\n%s", got, p.stderr)
		}
	})

	t.Run("head", func(t *testing.T) {
		t.Parallel()
		small, _, input := urls("head")
		dir := t.TempDir()
		write(t, filepath.Join(dir, "urls"), input)
		cmd := exec.Command("sh", "-c", "{ ckfetch -d out < urls; echo $? > status; } | head -n 1")
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
		case <-time.After(20 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			t.Fatalf("ckfetch | head -n 1 did not return 20 s after head ended; killed\nstdout: %q\nstderr:\n%s", stdout.String(), stderr.String())
		}
		if got := stdout.String(); got != small+"\n" {
			t.Errorf("ckfetch | head -n 1 printed %q; want %q", got, small+"\n")
		}
		if got := strings.TrimSpace(string(read(t, filepath.Join(dir, "status")))); got != "141" {
			t.Errorf("ckfetch's status in the pipeline: %s; want 141", got)
		}
	})
}

// shmDir returns a fresh directory in memory if the machine has /dev/shm
// (tens of thousands of fsyncs on a disk would make the test slow), else a
// t.TempDir.
func shmDir(t *testing.T) string {
	t.Helper()
	if d, err := os.MkdirTemp("/dev/shm", "ckfetch-test-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return t.TempDir()
}

// memoryLines writes the input of a memory run into dir/urls: head, then n
// tiny distinct URLs. Nineteen in twenty of those are already downloaded (their
// final files are written here, so ckfetch finds them without a request) to
// keep the run short; the twentieth are real downloads. Either way each line goes
// through reading, the window, a host queue, a worker and the ordered echo.
// The last line stalls 200 ms after its headers, so that the process outlives
// its peak by several of pollPeakRSS's samples: a run of few lines could
// otherwise end before any sample but the first, taken just after exec
// (136 KiB).
func memoryLines(t *testing.T, dir, base, head string, n int) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "urls"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, head)
	for i := range n {
		u := fmt.Sprintf("%s/f/t?size=1&tag=%d", base, i)
		fmt.Fprintln(w, u)
		if i%20 != 0 {
			name := outPath(t, dir, u)
			if i == 1 {
				if err := os.MkdirAll(filepath.Dir(name), 0o777); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(name, fetchtest.Body("t", 1), 0o666); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Only a URL's first request stalls: the tail is new in every run.
	fmt.Fprintf(w, "%s/f/tail?size=1&stall=0&stalldur=200ms&tag=%s\n", base, filepath.Base(dir))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	return f
}

// peakRSS runs ckfetch to its end on the input of memoryLines and returns
// its peak resident set in KiB, its stdout and how it ended. The peak is
// VmHWM of /proc/PID/status, polled: the rusage of a child started with
// vfork also counts the parent's memory at exec.
func peakRSS(t *testing.T, srv *fetchtest.Server, head string, n int, args ...string) (kib int64, stdout, status string) {
	t.Helper()
	dir := shmDir(t)
	stdin := memoryLines(t, dir, srv.URL, head, n)
	p := startFetch(t, dir, stdin, append([]string{"-q", "-d", "out"}, args...)...)
	peak := pollPeakRSS(t, p)
	out := p.rest()
	ps := p.wait(watchdog)
	return peak(), out, how(ps)
}

// growthOnly runs the test's ckfetch processes at GOGC=100, for the tests
// that compare a run's peak RSS over few lines or hosts with its peak over
// many: the heap headroom (fetch.HeapHeadroom) is a fixed allowance that a
// run of 1,000 lines never fills and a long one does, so it would count as
// growth. What those tests prove is that the live heap does not grow; the
// headroom is bounded on its own (TestFetchHeapHeadroom, lib/gcpace).
func growthOnly(t *testing.T) {
	t.Setenv("GOGC", "100")
}

// pollPeakRSS samples the peak RSS (VmHWM) of p every 20 ms until it ends.
// The function it returns, called once p has ended, waits for the sampler
// and returns the peak in KiB; it skips the test where /proc has none.
func pollPeakRSS(t *testing.T, p *proc) func() int64 {
	var peak atomic.Int64
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		status := fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)
		for !p.ended() {
			if kib := vmHWM(status); kib > peak.Load() {
				peak.Store(kib)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return func() int64 {
		<-polled
		if peak.Load() == 0 {
			t.Skip("no VmHWM in /proc/PID/status on this system")
		}
		return peak.Load()
	}
}

// vmHWM returns the VmHWM of a /proc/PID/status file in KiB, 0 if unknown.
func vmHWM(status string) int64 {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kib)
			return kib
		}
	}
	return 0
}

// raceBuild reports whether this binary, and so the ckfetch it runs, was
// built with -race.
func raceBuild() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// TestFetchHeapHeadroom: the ckfetch binary lets its heap grow by
// fetch.HeapHeadroom between garbage collections (gcpace.Headroom), so a
// run of many small files collects a few times, not every few MiB
// allocated; GOGC in the environment still rules. Counted with
// GODEBUG=gctrace=1 (one "gc N @" line per collection), not timed.
func TestFetchHeapHeadroom(t *testing.T) {
	const n = 5000
	body := bytes.Repeat([]byte("x"), 1024)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "%s/f%d\n", srv.URL, i)
	}
	gcLine := regexp.MustCompile(`(?m)^gc \d+ @`)
	collections := func(env string) int {
		t.Setenv("GODEBUG", "gctrace=1")
		t.Setenv("GOGC", env) // "": the runtime's default, as if unset
		dir := shmDir(t)
		p := startFetch(t, dir, strings.NewReader(in.String()), "-q", "-d", "out", "-j", "8")
		out := p.rest()
		if st := how(p.wait(watchdog)); st != "exit 0" || strings.Count(out, "\n") != n {
			t.Fatalf("GOGC=%q: %s, %d lines echoed; want exit 0, %d\nstderr:\n%s", env, st, strings.Count(out, "\n"), n, tail(p.stderr.String(), 2000))
		}
		return len(gcLine.FindAllString(p.stderr.String(), -1))
	}
	plain := collections("100")
	headroom := collections("")
	t.Logf("%d files: %d collections at GOGC=100, %d with the headroom of %d MiB", n, plain, headroom, fetch.HeapHeadroom>>20)
	if plain < 3 {
		t.Fatalf("only %d collections at GOGC=100 over %d files: the test no longer allocates enough to tell", plain, n)
	}
	if headroom*2 > plain {
		t.Errorf("%d collections with the headroom against %d at GOGC=100; want at most half", headroom, plain)
	}
}

// TestFetchMemoryBounded: ckfetch's memory is bounded by its window, not by
// the input: with a download stalled at the head of the list, which holds
// back the ordered echo, or a failure without --failed, which freezes it,
// ckfetch's peak RSS over many lines stays close to its peak over few.
func TestFetchMemoryBounded(t *testing.T) {
	many, few := 100_000, 1_000
	if testing.Short() {
		many = 20_000
	}
	const factor = 2.0
	growthOnly(t)
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	args := []string{"--window", "1000", "-j", "16", "--per-host", "16"}
	check := func(t *testing.T, head func(n int) string, wantStatus string, wantEchoed func(n int) int) {
		t.Helper()
		var kib [2]int64
		for i, n := range []int{few, many} {
			var out, st string
			kib[i], out, st = peakRSS(t, srv, head(n), n, args...)
			if echoed := strings.Count(out, "\n"); st != wantStatus || echoed != wantEchoed(n) {
				t.Fatalf("%d lines: %s, %d lines echoed; want %s and %d", n, st, echoed, wantStatus, wantEchoed(n))
			}
		}
		t.Logf("peak RSS: %d KiB for %d lines, %d KiB for %d lines", kib[0], few, kib[1], many)
		if raceBuild() {
			t.Logf("not compared under -race: the race detector's own memory grows with the work done (scripts/test.sh runs this test without -race too)")
			return
		}
		if float64(kib[1]) > factor*float64(kib[0]) {
			t.Errorf("peak RSS %d KiB for %d lines is more than %.0f times the %d KiB for %d lines: memory grows with the input", kib[1], many, factor, kib[0], few)
		}
	}

	t.Run("stalled head", func(t *testing.T) {
		// The head stalls after its headers for 1 s: the window fills and
		// dispatch waits; then the lines behind it flow. Only a URL's first
		// request stalls, so each run gets its own head.
		check(t, func(n int) string { return fmt.Sprintf("%s/f/head?size=10&stall=0&stalldur=1s&tag=%d", srv.URL, n) },
			"exit 0", func(n int) int { return n + 2 })
	})

	t.Run("frozen echo", func(t *testing.T) {
		// A 404 at the head, without --failed, freezes the echo: the lines
		// behind it are downloaded but none is echoed.
		check(t, func(int) string { return srv.URL + "/status/404" }, "exit 1", func(int) int { return 0 })
	})
}

// hostLog is a test server that records when each request started and how
// many were in flight at once.
type hostLog struct {
	mu        sync.Mutex
	starts    []time.Time
	active    int
	maxActive int
	srv       *httptest.Server
}

func (h *hostLog) enter() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.starts = append(h.starts, time.Now())
	h.active++
	h.maxActive = max(h.maxActive, h.active)
}

func (h *hostLog) leave() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.active--
}

func (h *hostLog) isActive() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.active > 0
}

func (h *hostLog) stats() (maxActive int, starts []time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.maxActive, slices.Clone(h.starts)
}

// newHostLog starts a server that holds each request in hold (which returns
// when the request may be answered) and answers with a few bytes.
func newHostLog(t *testing.T, hold func(r *http.Request)) *hostLog {
	h := &hostLog{}
	h.start(t, hold)
	return h
}

// start starts h's server.
func (h *hostLog) start(t *testing.T, hold func(r *http.Request)) {
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.enter()
		defer h.leave()
		hold(r)
		io.WriteString(w, "ok\n")
	}))
	t.Cleanup(h.srv.Close)
}

// runFetch runs ckfetch to its end in dir and returns its stdout, stderr and
// how it ended.
func runFetch(t *testing.T, dir, stdin string, args ...string) (stdout, stderr, status string) {
	t.Helper()
	p := startFetch(t, dir, strings.NewReader(stdin), args...)
	out := p.rest()
	st := how(p.wait(watchdog))
	return out, p.stderr.String(), st
}

func urlList(base string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s/x?i=%d\n", base, i)
	}
	return b.String()
}

// TestFetchHostLimits: the requests ckfetch sends, as its servers see them.
func TestFetchHostLimits(t *testing.T) {
	t.Run("per-host", func(t *testing.T) {
		t.Parallel()
		// Each request is held 100 ms, so that without the per-host limit
		// -j 8 would have up to 8 in flight.
		h := newHostLog(t, func(*http.Request) { time.Sleep(100 * time.Millisecond) })
		input := urlList(h.srv.URL, 16)
		out, stderr, st := runFetch(t, t.TempDir(), input, "-q", "-d", "out", "-j", "8", "--per-host", "2")
		if st != "exit 0" || out != input {
			t.Fatalf("ckfetch: %s, echoed %q; want exit 0 and every line\nstderr:\n%s", st, out, stderr)
		}
		maxActive, starts := h.stats()
		if len(starts) != 16 || maxActive > 2 {
			t.Errorf("%d requests, at most %d at once; want 16, at most 2 at once (--per-host 2)", len(starts), maxActive)
		}
	})

	t.Run("sleep", func(t *testing.T) {
		t.Parallel()
		h := newHostLog(t, func(*http.Request) {})
		const gap = 200 * time.Millisecond
		input := urlList(h.srv.URL, 4)
		out, stderr, st := runFetch(t, t.TempDir(), input, "-q", "-d", "out", "-j", "1", "-sleep", gap.String())
		if st != "exit 0" || out != input {
			t.Fatalf("ckfetch: %s, echoed %q; want exit 0 and every line\nstderr:\n%s", st, out, stderr)
		}
		_, starts := h.stats()
		if len(starts) != 4 {
			t.Fatalf("%d requests; want 4", len(starts))
		}
		// ckfetch spaces the starts of its requests; the server sees their
		// arrival, which the first request's connect delays a little, hence
		// the slack. Without -sleep they would be a few ms apart.
		const slack = 50 * time.Millisecond
		for i := 1; i < len(starts); i++ {
			if d := starts[i].Sub(starts[i-1]); d < gap-slack {
				t.Errorf("requests %d and %d started %s apart; want at least %s (-sleep)", i, i+1, d, gap)
			}
		}
	})

	t.Run("two hosts", func(t *testing.T) {
		t.Parallel()
		// Each request waits (at most 10 s) until both servers have one in
		// flight: that happens only if ckfetch serves both hosts at once.
		a, b := &hostLog{}, &hostLog{}
		var overlap atomic.Int32
		var total, maxTotal atomic.Int32
		hold := func(*http.Request) {
			cur := total.Add(1)
			defer total.Add(-1)
			for m := maxTotal.Load(); cur > m && !maxTotal.CompareAndSwap(m, cur); m = maxTotal.Load() {
			}
			for range 1000 {
				if a.isActive() && b.isActive() {
					overlap.Add(1)
					time.Sleep(20 * time.Millisecond)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		a.start(t, hold)
		b.start(t, hold)
		// All of the first host's lines come first: a scheduler that waits
		// for a free slot of that host before reading on would serve the
		// hosts one after the other.
		input := urlList(a.srv.URL, 6) + urlList(b.srv.URL, 6)
		out, stderr, st := runFetch(t, t.TempDir(), input, "-q", "-d", "out", "-j", "4", "--per-host", "2")
		if st != "exit 0" || out != input {
			t.Fatalf("ckfetch: %s, echoed %q; want exit 0 and every line\nstderr:\n%s", st, out, stderr)
		}
		maxA, startsA := a.stats()
		maxB, startsB := b.stats()
		if len(startsA) != 6 || len(startsB) != 6 {
			t.Errorf("requests: %d and %d; want 6 to each host", len(startsA), len(startsB))
		}
		if maxA > 2 || maxB > 2 || maxTotal.Load() > 4 {
			t.Errorf("at most %d and %d requests at once per host, %d in all; want at most 2 per host (--per-host 2) and 4 in all (-j 4)", maxA, maxB, maxTotal.Load())
		}
		if overlap.Load() == 0 {
			t.Errorf("the two hosts were never served at the same time")
		}
	})
}

// TestFetchReport: --report FILE has one JSON object per URL with exactly
// the keys of SPEC.md; a redirect shows where it ended; sha256 is the file's
// for a file downloaded, and empty for the others.
func TestFetchReport(t *testing.T) {
	t.Parallel()
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	done := srv.URL + "/f/a?size=10"
	redirected := srv.URL + "/f/r?size=20&redirect=2"
	missing := srv.URL + "/status/404"
	there := srv.URL + "/f/e?size=5"
	if err := os.MkdirAll(filepath.Dir(outPath(t, dir, there)), 0o777); err != nil {
		t.Fatal(err)
	}
	write(t, outPath(t, dir, there), "12345")
	input := done + "\n" + redirected + "\n" + missing + "\n" + there + "\n"
	_, stderr, st := runFetch(t, dir, input, "-q", "-d", "out", "--failed", "failed.txt", "--report", "report.jsonl")
	if st != "exit 1" {
		t.Fatalf("ckfetch: %s; want exit 1 (one URL failed)\nstderr:\n%s", st, stderr)
	}

	type want struct {
		finalURL, status string
		httpStatus       int
		bytes, attempts  int
		file             []byte // nil: no file to check
		error            bool
	}
	wants := map[string]want{
		done:       {done, "done", 200, 10, 1, fetchtest.Body("a", 10), false},
		redirected: {srv.URL + "/f/r?size=20", "done", 200, 20, 1, fetchtest.Body("r", 20), false},
		missing:    {missing, "failed", 404, 0, 1, nil, true},
		there:      {"", "exists", 0, 0, 0, []byte("12345"), false},
	}
	keys := []string{"attempts", "bytes", "duration_ms", "error", "final_url", "http_status", "path", "sha256", "status", "url"}
	report := strings.TrimSuffix(string(read(t, filepath.Join(dir, "report.jsonl"))), "\n")
	seen := map[string]bool{}
	for i, line := range strings.Split(report, "\n") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("report.jsonl:%d: %v: %s", i+1, err, line)
		}
		if got := slices.Sorted(maps.Keys(obj)); !slices.Equal(got, keys) {
			t.Errorf("report.jsonl:%d: keys %v; want %v", i+1, got, keys)
		}
		var r struct {
			URL        string `json:"url"`
			FinalURL   string `json:"final_url"`
			Path       string `json:"path"`
			Status     string `json:"status"`
			HTTPStatus int    `json:"http_status"`
			Bytes      int    `json:"bytes"`
			Attempts   int    `json:"attempts"`
			DurationMS int    `json:"duration_ms"`
			Error      string `json:"error"`
			SHA256     string `json:"sha256"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("report.jsonl:%d: a key has the wrong type: %v: %s", i+1, err, line)
		}
		w, ok := wants[r.URL]
		if !ok || seen[r.URL] {
			t.Errorf("report.jsonl:%d: url %q is not one of the input's, or twice", i+1, r.URL)
			continue
		}
		seen[r.URL] = true
		if w.finalURL != "" && r.FinalURL != w.finalURL {
			t.Errorf("report.jsonl:%d: final_url %q; want %q", i+1, r.FinalURL, w.finalURL)
		}
		if r.Status != w.status || r.HTTPStatus != w.httpStatus || r.Bytes != w.bytes || r.Attempts != w.attempts || r.DurationMS < 0 {
			t.Errorf("report.jsonl:%d: status %q, http_status %d, bytes %d, attempts %d, duration_ms %d; want %q, %d, %d, %d, >= 0",
				i+1, r.Status, r.HTTPStatus, r.Bytes, r.Attempts, r.DurationMS, w.status, w.httpStatus, w.bytes, w.attempts)
		}
		if (r.Error != "") != w.error {
			t.Errorf("report.jsonl:%d: error %q; want one: %v", i+1, r.Error, w.error)
		}
		if w.file != nil {
			path := r.Path
			if !filepath.IsAbs(path) {
				path = filepath.Join(dir, path)
			}
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, w.file) {
				t.Errorf("report.jsonl:%d: path %q does not hold the file (%v)", i+1, r.Path, err)
			}
		}
		if want := map[bool]string{true: fmt.Sprintf("%x", sha256.Sum256(w.file))}[w.status == "done"]; r.SHA256 != want {
			t.Errorf("report.jsonl:%d: sha256 %q; want %q", i+1, r.SHA256, want)
		}
	}
	if len(seen) != len(wants) {
		t.Errorf("report.jsonl has %d of the %d URLs:\n%s", len(seen), len(wants), report)
	}
}

// summary is ckfetch's last line on stderr.
var summary = regexp.MustCompile(`^ckfetch: \d+ done, \d+ already there, \d+ failed; .* in .* \(.*/s\)$`)

// TestFetchQuiet: with stderr not a terminal, ckfetch shows no progress, only
// one summary line at the end, even for a download long enough for progress
// to be drawn; -q prints nothing on success but still prints errors.
func TestFetchQuiet(t *testing.T) {
	t.Parallel()
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	slow := srv.URL + "/f/slow?size=100000&slow=100000" // about a second
	missing := srv.URL + "/status/404"

	t.Run("not a terminal", func(t *testing.T) {
		t.Parallel()
		_, stderr, st := runFetch(t, t.TempDir(), slow+"\n", "-d", "out")
		if st != "exit 0" {
			t.Fatalf("ckfetch: %s\nstderr:\n%s", st, stderr)
		}
		if lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n"); len(lines) != 1 || !summary.MatchString(lines[0]) {
			t.Errorf("stderr:\n%s\nwant only one summary line", stderr)
		}
	})

	t.Run("-q success", func(t *testing.T) {
		t.Parallel()
		_, stderr, st := runFetch(t, t.TempDir(), slow+"\n", "-q", "-d", "out")
		if st != "exit 0" || stderr != "" {
			t.Errorf("ckfetch -q: %s, stderr %q; want exit 0 and nothing on stderr", st, stderr)
		}
	})

	t.Run("-q error", func(t *testing.T) {
		t.Parallel()
		_, stderr, st := runFetch(t, t.TempDir(), missing+"\n", "-q", "-d", "out", "--failed", "failed.txt")
		if st != "exit 1" {
			t.Errorf("ckfetch -q: %s; want exit 1", st)
		}
		if !strings.Contains(stderr, "ckfetch: "+missing+": HTTP 404") {
			t.Errorf("ckfetch -q stderr %q; want the 404 named", stderr)
		}
		for _, line := range strings.Split(stderr, "\n") {
			if summary.MatchString(line) {
				t.Errorf("ckfetch -q printed the summary %q", line)
			}
		}
	})
}

// errWriter is a stdout whose writes fail with err.
type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// TestFetchExitStatus: the exit statuses of SPEC.md, from lib/fetch.Main.
func TestFetchExitStatus(t *testing.T) {
	t.Parallel()
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	ok := srv.URL + "/f/ok?size=10\n"
	signaled := func(sig os.Signal) context.Context {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(cli.Signal{Sig: sig})
		return ctx
	}
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		args   []string
		stdin  string
		stdout io.Writer
		want   int
	}{
		{name: "all done", stdin: ok + srv.URL + "/f/ok2?size=0\n", want: cli.ExitOK},
		{name: "nothing to do", stdin: "# only a comment\n\n", want: cli.ExitOK},
		{name: "one failed", stdin: ok + srv.URL + "/status/404\n", want: cli.ExitFailure},
		{name: "one failed, --failed", args: []string{"--failed", "failed.txt"}, stdin: srv.URL + "/status/410\n" + ok, want: cli.ExitFailure},
		{name: "bad line", stdin: "ftp://example.com/x\n", want: cli.ExitFailure},
		{name: "usage", args: []string{"--jobs", "0"}, stdin: ok, want: cli.ExitUsage},
		{name: "unknown flag", args: []string{"--no-such-flag"}, stdin: ok, want: cli.ExitUsage},
		{name: "output dir not a directory", args: []string{"-d", "afile/out"}, stdin: ok, want: cli.ExitUsage},
		{name: "stdout write error", stdin: ok, stdout: errWriter{syscall.EIO}, want: cli.ExitUsage},
		{name: "stdout closed", stdin: ok, stdout: errWriter{syscall.EPIPE}, want: cli.ExitPipe},
		{name: "SIGINT", ctx: signaled(os.Interrupt), stdin: ok, want: cli.ExitInterrupted},
		{name: "SIGTERM", ctx: signaled(syscall.SIGTERM), stdin: ok, want: cli.ExitTerminated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "afile"), "not a directory")
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			stdout := tc.stdout
			if stdout == nil {
				stdout = io.Discard
			}
			args := append([]string{"-d", filepath.Join(dir, "out"), "--retries", "0"}, tc.args...)
			for i, a := range args {
				if a == "failed.txt" || a == "afile/out" {
					args[i] = filepath.Join(dir, a)
				}
			}
			var stderr bytes.Buffer
			if got := fetch.Main(ctx, args, strings.NewReader(tc.stdin), stdout, &stderr); got != tc.want {
				t.Errorf("fetch.Main(%q) = %d; want %d\nstderr:\n%s", args, got, tc.want, stderr.String())
			}
		})
	}
}
