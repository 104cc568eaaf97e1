package cmd_test

// Signals sent to the real processes: SIGHUP stops each tool like SIGTERM,
// with status 129, and ckmark drains its stdin after a first signal and
// stops at once on a second one.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/fetchtest"
)

// markProc is a running ckmark -t: the test writes its stdin and reads the
// lines it echoes (so knows they are durable).
type markProc struct {
	cmd    *exec.Cmd
	stdin  *os.File
	echoed *bufio.Reader
	stderr *lockedBuffer
	waited chan struct{}
	drop   sync.Once
}

func startMark(t *testing.T, args ...string) *markProc {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &markProc{cmd: ckmark(t, args...), stdin: w, stderr: &lockedBuffer{}, waited: make(chan struct{})}
	p.cmd.Stdin = r
	p.cmd.Stderr = p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.echoed = bufio.NewReader(out)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	go func() { p.cmd.Wait(); close(p.waited) }()
	t.Cleanup(func() {
		w.Close()
		p.cmd.Process.Kill()
		<-p.waited
	})
	return p
}

// lines writes lines from to to-1 and returns them.
func (p *markProc) lines(t *testing.T, from, to int) string {
	t.Helper()
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "https://example.com/%d\n", i)
	}
	if _, err := io.WriteString(p.stdin, b.String()); err != nil {
		t.Fatalf("write ckmark's stdin: %v (stderr %q)", err, p.stderr)
	}
	return b.String()
}

// echo reads the echo of want, which ckmark writes once it is durable.
func (p *markProc) echo(t *testing.T, want string) {
	t.Helper()
	got := make([]byte, len(want))
	n, err := io.ReadFull(p.echoed, got)
	if err != nil || string(got) != want {
		t.Fatalf("echoed %.200q (%v); want %.200q (stderr %q)", got[:n], err, want, p.stderr)
	}
}

// discard reads and drops the rest of the echo, so ckmark never blocks on it.
func (p *markProc) discard() {
	p.drop.Do(func() { go io.Copy(io.Discard, p.echoed) })
}

// wait waits for ckmark to end (failing the test after limit, a failure
// timeout) and returns how it ended.
func (p *markProc) wait(t *testing.T, limit time.Duration) string {
	t.Helper()
	p.discard()
	select {
	case <-p.waited:
	case <-time.After(limit):
		t.Fatalf("ckmark still running %s later (stderr %q)", limit, p.stderr)
	}
	return how(p.cmd.ProcessState)
}

func checkpointIs(t *testing.T, path, want string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != want {
		t.Errorf("checkpoint has %d bytes (%.80q...), want %d bytes (%.80q...)", len(data), data, len(want), want)
	}
}

// TestSignalHangup: SIGHUP (the terminal closed) stops each tool as SIGTERM
// does, with status 129: ckmark with everything read durable, ckfetch with
// its "interrupted" message, ckskip mid-stream.
func TestSignalHangup(t *testing.T) {
	t.Run("ckmark", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "check.txt")
		// --grace 0: no drain, so it stops with stdin still open (closing
		// stdin could win the race with the signal, and end it with 0).
		p := startMark(t, "-t", "--grace", "0", path)
		want := p.lines(t, 0, 100)
		p.echo(t, want) // running, and its signal handling installed
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if got := p.wait(t, time.Minute); got != fmt.Sprintf("exit %d", cli.ExitHangup) {
			t.Errorf("ckmark ended with %s after SIGHUP; want exit %d (stderr %q)", got, cli.ExitHangup, p.stderr)
		}
		checkpointIs(t, path, want)
	})

	t.Run("ckfetch", func(t *testing.T) {
		srv := fetchtest.New()
		t.Cleanup(srv.Close)
		dir := t.TempDir()
		in, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		p := startFetch(t, dir, in, "-d", "out")
		in.Close()
		url := srv.URL + "/f/a?size=100"
		io.WriteString(w, url+"\n")
		if got := p.line(); got != url {
			t.Fatalf("echoed %q, want %q", got, url)
		}
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if got, want := how(p.wait(time.Minute)), fmt.Sprintf("exit %d", cli.ExitHangup); got != want {
			t.Errorf("ckfetch ended with %s after SIGHUP; want %s\nstderr:\n%s", got, want, p.stderr)
		}
		if !strings.Contains(p.stderr.String(), "interrupted") {
			t.Errorf("stderr does not say it was interrupted:\n%s", p.stderr)
		}
	})

	t.Run("ckskip", func(t *testing.T) {
		bin, err := exec.LookPath("ckskip")
		if err != nil {
			t.Fatal(err)
		}
		c := exec.Command(bin)
		in, err := c.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		stderr := &lockedBuffer{}
		c.Stderr = stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		// More than ckskip's output buffer, so some of it comes out: it is
		// running and its signal handling is installed.
		var list strings.Builder
		for i := 0; list.Len() < 1<<20; i++ {
			fmt.Fprintf(&list, "https://example.com/%d\n", i)
		}
		go io.WriteString(in, list.String())
		echoed := bufio.NewReader(out)
		if _, err := echoed.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		if err := c.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		// ckskip sees the signal between two reads of its input: keep
		// feeding it, as its writer would, until it ends.
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := io.WriteString(in, "more\n"); err != nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		io.Copy(io.Discard, echoed)
		err = c.Wait()
		in.Close()
		wg.Wait()
		if got := how(c.ProcessState); got != fmt.Sprintf("exit %d", cli.ExitHangup) {
			t.Errorf("ckskip ended with %s after SIGHUP; want exit %d (%v, stderr %q)", got, cli.ExitHangup, err, stderr)
		}
	})
}

// TestMarkDrainsAfterSignal: Ctrl-C reaches ckmark and the command writing
// to it at once; that writer still has lines to echo (ckfetch finishing a
// file) and echoes them before it exits. ckmark, with its default grace,
// records every one of them, then exits 130.
func TestMarkDrainsAfterSignal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "check.txt")
	p := startMark(t, "-t", path)
	want := p.lines(t, 0, 100)
	p.echo(t, want)
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	p.discard()
	for i := range 20 { // the writer's last lines, over a while
		time.Sleep(25 * time.Millisecond)
		want += p.lines(t, 100+10*i, 110+10*i)
	}
	p.stdin.Close()
	if got := p.wait(t, time.Minute); got != fmt.Sprintf("exit %d", cli.ExitInterrupted) {
		t.Errorf("ckmark ended with %s; want exit %d (stderr %q)", got, cli.ExitInterrupted, p.stderr)
	}
	checkpointIs(t, path, want)
}

// TestMarkSecondSignal: after a first signal ckmark drains its stdin; a
// second one, with stdin still open and an hour of grace left, ends it at
// once, with every line it echoed (read and made durable) in the checkpoint
// and the first signal's status.
func TestMarkSecondSignal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "check.txt")
	p := startMark(t, "-t", "--grace", "1h", path)
	want := p.lines(t, 0, 100)
	p.echo(t, want)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	more := p.lines(t, 100, 200)
	p.echo(t, more) // read and recorded after the first signal
	want += more
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	// A failure timeout far below the hour of grace.
	if got := p.wait(t, time.Minute); got != fmt.Sprintf("exit %d", cli.ExitTerminated) {
		t.Errorf("ckmark ended with %s; want exit %d (stderr %q)", got, cli.ExitTerminated, p.stderr)
	}
	checkpointIs(t, path, want)
}
