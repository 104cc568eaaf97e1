package mark_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/checkpoint"
	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/mark"
)

func readFile(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestMainStatus(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name      string
		args      []string
		stdin     string
		status    int
		file      string // wanted content of dir/check.txt; "-": not looked at
		stdout    string
		stderrHas string // a substring of stderr; "": stderr empty
	}{
		{name: "records lines", args: []string{"C"}, stdin: "a\r\n\n  \nb\n", file: "a\nb\n"},
		{name: "tee", args: []string{"-t", "C"}, stdin: "a\nb\r\n", file: "a\nb\n", stdout: "a\nb\n"},
		{name: "sync every zero", args: []string{"--sync-every", "0", "C"}, stdin: "a\n", file: "a\n"},
		{name: "go-style flag", args: []string{"-sync-every", "1ms", "C"}, stdin: "a\n", file: "a\n"},
		{name: "unterminated tail", args: []string{"C"}, stdin: "a\nhalf", file: "a\n",
			stderrHas: `ckmark: stdin: last line has no newline; not recorded: "half"`},
		{name: "blank unterminated tail", args: []string{"C"}, stdin: "a\n  ", file: "a\n"},
		{name: "no arguments", args: nil, status: cli.ExitUsage, file: "-", stderrHas: "ckmark: expected"},
		{name: "unknown flag", args: []string{"--bogus", "C"}, status: cli.ExitUsage, file: "-", stderrHas: "unknown flag"},
		{name: "negative window", args: []string{"--sync-every=-1s", "C"}, status: cli.ExitUsage, file: "-", stderrHas: "must not be negative"},
		{name: "help", args: []string{"--help"}, status: cli.ExitOK, file: "-", stdout: "*Usage: ckmark"},
		{name: "missing directory", args: []string{filepath.Join(dir, "nodir", "c.txt")}, status: cli.ExitUsage, file: "-",
			stderrHas: "open checkpoint " + filepath.Join(dir, "nodir", "c.txt") + ": no such file or directory (does directory"},
		{name: "checkpoint is a directory", args: []string{dir}, status: cli.ExitUsage, file: "-", stderrHas: "is a directory (CHECKPOINT must be a file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "check.txt")
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				if a == "C" {
					a = path
				}
				args[i] = a
			}
			var stdout, stderr bytes.Buffer
			status := mark.Main(context.Background(), args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if status != tt.status {
				t.Errorf("status = %d, want %d (stderr %q)", status, tt.status, stderr.String())
			}
			if tt.file != "-" {
				if got := readFile(t, path); got != tt.file {
					t.Errorf("checkpoint = %q, want %q", got, tt.file)
				}
			}
			if want, ok := strings.CutPrefix(tt.stdout, "*"); ok {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout = %q, want it to contain %q", stdout.String(), want)
				}
			} else if stdout.String() != tt.stdout {
				t.Errorf("stdout = %q, want %q", stdout.String(), tt.stdout)
			}
			if tt.stderrHas == "" && stderr.Len() > 0 || !strings.Contains(stderr.String(), tt.stderrHas) {
				t.Errorf("stderr = %q, want %q", stderr.String(), tt.stderrHas)
			}
		})
	}
}

// durableCheck is a -t stdout that checks, on each write, that every line
// it gets is already in the checkpoint.
type durableCheck struct {
	t    *testing.T
	path string
	mu   sync.Mutex
	out  bytes.Buffer
}

func (d *durableCheck) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.out.Write(p)
	if file := readFile(d.t, d.path); !strings.HasPrefix(file, d.out.String()) {
		d.t.Errorf("echoed %d bytes but the checkpoint holds %d of them", d.out.Len(), len(file))
	}
	return len(p), nil
}

func TestTeeAfterDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "check.txt")
	var in strings.Builder
	for i := range 50000 {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	out := &durableCheck{t: t, path: path}
	var stderr bytes.Buffer
	if s := mark.Main(context.Background(), []string{"-t", "--sync-every=0", path}, strings.NewReader(in.String()), out, &stderr); s != 0 {
		t.Fatalf("status %d, stderr %q", s, stderr.String())
	}
	if out.out.String() != in.String() || readFile(t, path) != in.String() {
		t.Errorf("stdout or checkpoint differ from the input")
	}
}

// waitFor polls the checkpoint until it holds want (bounded; the machine
// may be slow, so the bound is generous and only stops a broken test).
func waitFor(t *testing.T, path, want string) {
	t.Helper()
	for range 6000 {
		if data, _ := os.ReadFile(path); string(data) == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("checkpoint never held %q; it holds %q", want, readFile(t, path))
}

// After a signal, with --grace 0 (no drain), Main commits what it read and
// returns 130 or 143 even though stdin stays open and its reader is blocked
// in Read, and even with a long --sync-every window.
func TestSignal(t *testing.T) {
	tests := []struct {
		sig    syscall.Signal
		window string
		status int
	}{
		{syscall.SIGTERM, "0", cli.ExitTerminated},
		{syscall.SIGINT, "0", cli.ExitInterrupted},
		{syscall.SIGTERM, "1h", cli.ExitTerminated},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v window %s", tt.sig, tt.window), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "check.txt")
			pr, pw := io.Pipe()
			defer pw.Close()
			reads := make(chan struct{}, 100)
			stdin := readNotifier{pr, reads}
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			var stderr bytes.Buffer
			result := make(chan int, 1)
			go func() {
				result <- mark.Main(ctx, []string{"--grace", "0", "--sync-every", tt.window, path}, stdin, io.Discard, &stderr)
			}()
			var want strings.Builder
			for i := range 100 {
				fmt.Fprintf(&want, "u%d\n", i)
			}
			<-reads
			io.WriteString(pw, want.String()) // returns once ckmark read it all
			<-reads                           // parsed it all, blocked again
			if tt.window == "0" {
				waitFor(t, path, want.String()) // durable while streaming
			}
			cancel(cli.Signal{Sig: tt.sig})
			if s := <-result; s != tt.status {
				t.Errorf("status = %d, want %d", s, tt.status)
			}
			if got := readFile(t, path); got != want.String() {
				t.Errorf("checkpoint has %d bytes, want all %d read", len(got), want.Len())
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr = %q, want empty", stderr.String())
			}
		})
	}
}

// After a first signal Main goes on reading and recording until stdin ends
// (here a writer that keeps writing for a while after the signal, as ckfetch
// does while it finishes its last files), and returns the signal's status.
// With a short --grace and stdin left open, it stops when the grace ends,
// with whole lines recorded: all those from before the signal, and however
// many of the later ones it read in time.
func TestSignalDrains(t *testing.T) {
	for _, tt := range []struct {
		name, grace string
		closeStdin  bool
	}{
		{"until stdin ends", "1h", true},
		{"until grace ends", "100ms", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "check.txt")
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer pr.Close()
			defer pw.Close()
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			var stderr bytes.Buffer
			result := make(chan int, 1)
			go func() {
				result <- mark.Main(ctx, []string{"--grace", tt.grace, "--sync-every", "0", path}, pr, io.Discard, &stderr)
			}()
			var want strings.Builder
			write := func(from, to int) {
				var b strings.Builder
				for i := from; i < to; i++ {
					fmt.Fprintf(&b, "u%d\n", i)
				}
				if _, err := io.WriteString(pw, b.String()); err != nil {
					t.Fatal(err)
				}
				want.WriteString(b.String())
			}
			write(0, 10)
			waitFor(t, path, want.String())
			before := want.String()
			cancel(cli.Signal{Sig: syscall.SIGINT})
			for i := range 10 { // more lines, over a while
				time.Sleep(20 * time.Millisecond)
				write(10+10*i, 20+10*i)
			}
			if tt.closeStdin {
				pw.Close()
			}
			if s := <-result; s != cli.ExitInterrupted {
				t.Errorf("status = %d, want %d", s, cli.ExitInterrupted)
			}
			got := readFile(t, path)
			switch {
			case tt.closeStdin && got != want.String():
				t.Errorf("checkpoint has %d bytes, want all %d written before stdin ended", len(got), want.Len())
			case !strings.HasPrefix(want.String(), got) || !strings.HasPrefix(got, before) || !strings.HasSuffix(got, "\n"):
				t.Errorf("checkpoint %q is not whole lines of the input from the first %d bytes on", got, len(before))
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr = %q, want empty", stderr.String())
			}
		})
	}
}

// readNotifier sends on reads each time a Read starts.
type readNotifier struct {
	r     io.Reader
	reads chan<- struct{}
}

func (n readNotifier) Read(p []byte) (int, error) {
	n.reads <- struct{}{}
	return n.r.Read(p)
}

// countingReader counts the bytes Main has read: n in all, prev before
// the last Read.
type countingReader struct {
	r       io.Reader
	mu      sync.Mutex
	n, prev int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.mu.Lock()
	c.prev = c.n
	c.n += n
	c.mu.Unlock()
	return n, err
}

// counts returns n and prev.
func (c *countingReader) counts() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.prev
}

type closedPipe struct{}

func (closedPipe) Write([]byte) (int, error) { return 0, syscall.EPIPE }

type brokenStdout struct{}

func (brokenStdout) Write([]byte) (int, error) { return 0, syscall.EIO }

// A closed stdout with -t stops the run: every complete line read is
// committed, then exit 141 (EPIPE) or 2 (another write error).
func TestTeeStdoutClosed(t *testing.T) {
	tests := []struct {
		name   string
		stdout io.Writer
		status int
		stderr string
	}{
		{"EPIPE", closedPipe{}, cli.ExitPipe, ""},
		{"EIO", brokenStdout{}, cli.ExitUsage, "ckmark: write stdout: input/output error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "check.txt")
			var in strings.Builder
			for i := range 300000 {
				fmt.Fprintf(&in, "line %d\n", i)
			}
			src := &countingReader{r: strings.NewReader(in.String())}
			var stderr bytes.Buffer
			s := mark.Main(context.Background(), []string{"-t", "--sync-every=0", path}, src, tt.stdout, &stderr)
			if s != tt.status {
				t.Errorf("status = %d, want %d", s, tt.status)
			}
			if got := stderr.String(); tt.stderr == "" && got != "" || !strings.Contains(got, tt.stderr) {
				t.Errorf("stderr = %q, want %q", got, tt.stderr)
			}
			// Main does not wait for a Read of stdin that is under way
			// when it stops (it might block forever); the reader then
			// drops what that Read returns. So what was read is all the
			// Reads, or all but the last one.
			whole := func(n int) string {
				read := in.String()[:n]
				return read[:strings.LastIndexByte(read, '\n')+1]
			}
			n, prev := src.counts()
			if got := readFile(t, path); got != whole(n) && got != whole(prev) {
				t.Errorf("checkpoint has %d bytes, want the %d or %d bytes of whole lines read", len(got), len(whole(n)), len(whole(prev)))
			}
		})
	}
}

func TestWriteFailure(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	var stderr bytes.Buffer
	s := mark.Main(context.Background(), []string{"/dev/full"}, strings.NewReader("a\n"), io.Discard, &stderr)
	if s != cli.ExitUsage || !strings.Contains(stderr.String(), "ckmark: write checkpoint /dev/full: no space left on device") {
		t.Errorf("status %d, stderr %q; want 2 and the write error", s, stderr.String())
	}
}

// BenchmarkMark compares ckmark's lines/s (10 bytes a line, from memory)
// with two baselines measured in the same run: one write and fsync per line
// (what group commit avoids) and one buffered write with a single fsync at
// the end (what `cat >> file && sync file` does). It reports the rates and
// the ratios mark/buffered and mark/per-line.
func BenchmarkMark(b *testing.B) {
	const n = 1_000_000
	const perLineN = 500 // fsync per line is slow: a smaller sample
	var in bytes.Buffer
	for i := range n {
		fmt.Fprintf(&in, "u%08d\n", i)
	}
	input := in.Bytes()
	dir := b.TempDir()
	var markDur, bufDur, lineDur time.Duration
	iters := 0
	for b.Loop() {
		iters++
		path := filepath.Join(dir, fmt.Sprintf("mark%d", iters))
		start := time.Now()
		if s := mark.Main(context.Background(), []string{path}, bytes.NewReader(input), io.Discard, io.Discard); s != 0 {
			b.Fatalf("status %d", s)
		}
		markDur += time.Since(start)

		b.StopTimer()
		start = time.Now()
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("buf%d", iters)), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o666)
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < len(input); off += 128 << 10 {
			f.Write(input[off:min(off+128<<10, len(input))])
		}
		f.Sync()
		f.Close()
		bufDur += time.Since(start)

		start = time.Now()
		a, err := checkpoint.OpenAppender(filepath.Join(dir, fmt.Sprintf("line%d", iters)), checkpoint.AppendOptions{})
		if err != nil {
			b.Fatal(err)
		}
		var one checkpoint.Batch
		for i := range perLineN {
			one.Reset()
			one.Add(input[i*10 : i*10+9])
			if err := a.Append(&one); err != nil {
				b.Fatal(err)
			}
		}
		a.Close()
		lineDur += time.Since(start)
		b.StartTimer()
	}
	markRate := float64(n*iters) / markDur.Seconds()
	bufRate := float64(n*iters) / bufDur.Seconds()
	lineRate := float64(perLineN*iters) / lineDur.Seconds()
	b.ReportMetric(markRate, "mark-lines/s")
	b.ReportMetric(bufRate, "buffered-lines/s")
	b.ReportMetric(lineRate, "fsync-per-line-lines/s")
	b.ReportMetric(markRate/bufRate, "x-buffered")
	b.ReportMetric(markRate/lineRate, "x-fsync-per-line")
}
