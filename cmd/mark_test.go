package cmd_test

// Tests of ckmark that testscript cannot express: concurrent processes,
// signals and exact exit statuses, run against the real binary that
// testscript.Main put in $PATH.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/mark"
)

// ckmark returns an exec.Cmd of the ckmark binary in $PATH.
func ckmark(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	bin, err := exec.LookPath("ckmark")
	if err != nil {
		t.Fatalf("ckmark not in $PATH (testscript.Main puts it there): %v", err)
	}
	return exec.Command(bin, args...)
}

func exitStatus(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("run ckmark: %v", err)
	}
	return ee.ExitCode()
}

// Two ckmark processes appending to one checkpoint at the same time give
// exactly all their lines, each whole, each process's in its own order.
func TestMarkConcurrentProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "check.txt")
	const n = 20000
	inputs := make([]string, 2)
	cmds := make([]*exec.Cmd, 2)
	pipes := make([]*os.File, 2)
	stderrs := make([]bytes.Buffer, 2)
	for p := range cmds {
		var in strings.Builder
		for i := range n {
			// Varying lengths, some longer than a page, so writes of
			// the two processes would tear lines if they interleaved.
			pad := (i * 37) % 300
			if i%100 == 0 {
				pad = 5000
			}
			fmt.Fprintf(&in, "p%d-%d-%s\n", p, i, strings.Repeat("x", pad))
		}
		inputs[p] = in.String()
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		pipes[p] = w
		// --sync-every 0: many small batches, the most chances to collide.
		cmds[p] = ckmark(t, "--sync-every", "0", path)
		cmds[p].Stdin = r
		cmds[p].Stderr = &stderrs[p]
		if err := cmds[p].Start(); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	// Feed the two processes in turns, so their batches alternate.
	const chunk = 16 << 10
	for off := 0; off < len(inputs[0]) || off < len(inputs[1]); off += chunk {
		for p, w := range pipes {
			if off < len(inputs[p]) {
				if _, err := io.WriteString(w, inputs[p][off:min(off+chunk, len(inputs[p]))]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for p, c := range cmds {
		pipes[p].Close()
		if s := exitStatus(t, c.Wait()); s != 0 {
			t.Fatalf("process %d: status %d, stderr %q", p, s, stderrs[p].String())
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Split the file back by process: each part must equal its input.
	var parts [2]strings.Builder
	switches, last := 0, ""
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if line == "" {
			continue
		}
		if len(line) > 3 && line[:3] != last {
			switches++
			last = line[:3]
		}
		switch {
		case strings.HasPrefix(line, "p0-"):
			parts[0].WriteString(line)
		case strings.HasPrefix(line, "p1-"):
			parts[1].WriteString(line)
		default:
			t.Fatalf("line %.60q belongs to no process: torn or interleaved", line)
		}
	}
	t.Logf("the checkpoint switches between the processes' lines %d times", switches-1)
	for p := range parts {
		if parts[p].String() != inputs[p] {
			t.Errorf("process %d's lines in the checkpoint (%d bytes) differ from its input (%d bytes)",
				p, parts[p].Len(), len(inputs[p]))
		}
	}
}

// A signal while stdin is still open, with --grace 0 (no drain): every line
// ckmark echoed (so read and recorded) before the signal is in the
// checkpoint, and the exit status is 128+signal.
func TestMarkSignal(t *testing.T) {
	tests := []struct {
		sig    syscall.Signal
		window string
		status int
	}{
		{syscall.SIGTERM, "100ms", cli.ExitTerminated},
		{syscall.SIGINT, "100ms", cli.ExitInterrupted},
		{syscall.SIGTERM, "0", cli.ExitTerminated},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v window %s", tt.sig, tt.window), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "check.txt")
			stdin, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			c := ckmark(t, "-t", "--grace", "0", "--sync-every", tt.window, path)
			c.Stdin = stdin
			out, err := c.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			c.Stderr = &stderr
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			stdin.Close()
			const n = 1000
			var want strings.Builder
			for i := range n {
				fmt.Fprintf(&want, "https://example.com/%d\n", i)
			}
			if _, err := io.WriteString(w, want.String()); err != nil {
				t.Fatal(err)
			}
			// Wait until all n lines are echoed: they are durable.
			echoed := bufio.NewReader(out)
			var got strings.Builder
			for range n {
				line, err := echoed.ReadString('\n')
				if err != nil {
					t.Fatalf("echo stopped after %d bytes: %v (stderr %q)", got.Len(), err, stderr.String())
				}
				got.WriteString(line)
			}
			if got.String() != want.String() {
				t.Fatalf("echoed lines differ from the input")
			}
			if err := c.Process.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, out)
			if s := exitStatus(t, c.Wait()); s != tt.status {
				t.Errorf("status %d, want %d (stderr %q)", s, tt.status, stderr.String())
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(data) != want.String() {
				t.Errorf("checkpoint has %d bytes, want the %d bytes echoed", len(data), want.Len())
			}
		})
	}
}

// A signal before any echo, with a long window and no drain (--grace 0):
// the lines ckmark read are still committed before it exits (nothing is left
// waiting for the window).
func TestMarkSignalBeforeWindow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "check.txt")
	stdin, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c := ckmark(t, "--grace", "0", "--sync-every", "1h", path)
	c.Stdin = stdin
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	// Far more than the pipe buffer holds (ckmark asks for 1 MiB): when the
	// write returns, ckmark has read at least the first lines, which the
	// window keeps uncommitted.
	var in strings.Builder
	for i := 0; in.Len() < 4<<20; i++ {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	if _, err := io.WriteString(w, in.String()); err != nil {
		t.Fatal(err)
	}
	if err := c.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if s := exitStatus(t, c.Wait()); s != cli.ExitTerminated {
		t.Errorf("status %d, want %d (stderr %q)", s, cli.ExitTerminated, stderr.String())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// What was read is a prefix of the input; whatever it is, it holds
	// only whole lines, and at least what no pipe could still buffer.
	if !strings.HasPrefix(in.String(), string(data)) || len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("checkpoint (%d bytes) is not whole lines of the input", len(data))
	}
	// At most the pipe (1 MiB) and ckmark's read buffer can hold what was
	// written but not yet parsed.
	if slack := 1<<20 + 512<<10; len(data) < in.Len()-slack {
		t.Errorf("checkpoint has %d bytes; ckmark had read at least %d", len(data), in.Len()-slack)
	}
}

// ckmark -t whose stdout reader has gone: everything read is recorded and
// the status is 141, as for SIGPIPE.
func TestMarkStdoutClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "check.txt")
	c := ckmark(t, "-t", path)
	var in strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	c.Stdin = strings.NewReader(in.String())
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // the next command of the pipeline died
	c.Stdout = w
	var stderr bytes.Buffer
	c.Stderr = &stderr
	err = c.Run()
	w.Close()
	if s := exitStatus(t, err); s != cli.ExitPipe {
		t.Errorf("status %d, want %d (stderr %q)", s, cli.ExitPipe, stderr.String())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(in.String(), string(data)) || len(data) == 0 || data[len(data)-1] != '\n' {
		t.Errorf("checkpoint (%d bytes) is not a non-empty run of whole input lines", len(data))
	}
}

// Exact exit statuses of the real binary, which testscript only sees as
// zero or not.
func TestMarkExitStatus(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		args   []string
		status int
	}{
		{"ok", []string{filepath.Join(dir, "ok.txt")}, cli.ExitOK},
		{"help", []string{"--help"}, cli.ExitOK},
		{"no checkpoint", nil, cli.ExitUsage},
		{"unknown flag", []string{"--bogus", filepath.Join(dir, "x.txt")}, cli.ExitUsage},
		{"missing directory", []string{filepath.Join(dir, "nodir", "c.txt")}, cli.ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ckmark(t, tt.args...)
			c.Stdin = strings.NewReader("a\n")
			if s := exitStatus(t, c.Run()); s != tt.status {
				t.Errorf("ckmark %q: status %d, want %d", tt.args, s, tt.status)
			}
			// The same through lib/mark.Main in-process.
			var out, errOut bytes.Buffer
			if s := mark.Main(context.Background(), tt.args, strings.NewReader("a\n"), &out, &errOut); s != tt.status {
				t.Errorf("mark.Main(%q) = %d, want %d", tt.args, s, tt.status)
			}
		})
	}
}
