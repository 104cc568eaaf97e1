package checkpoint_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/ck-tools/ck/lib/checkpoint"
)

// open opens an Appender on path and collects its warnings.
func open(t *testing.T, path string, opts checkpoint.AppendOptions) (*checkpoint.Appender, *[]string) {
	t.Helper()
	var warnings []string
	opts.Warn = func(msg string) { warnings = append(warnings, msg) }
	a, err := checkpoint.OpenAppender(path, opts)
	if err != nil {
		t.Fatalf("OpenAppender(%s): %v", path, err)
	}
	t.Cleanup(func() { a.Close() })
	return a, &warnings
}

func batchOf(lines ...string) *checkpoint.Batch {
	b := new(checkpoint.Batch)
	for _, l := range lines {
		b.Add([]byte(l))
	}
	return b
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestBatchAdd(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	tests := []struct {
		name  string
		lines []string
		want  string
		n     int
	}{
		{"plain", []string{"a", "b"}, "a\nb\n", 2},
		{"endings dropped, CRLF becomes LF", []string{"a\n", "b\r\n", "c\r"}, "a\nb\nc\r\n", 3},
		{"blank keys skipped", []string{"", " ", "\t \t", "\r\n", "a"}, "a\n", 1},
		{"spaces inside a line kept", []string{"  a b\t"}, "  a b\t\n", 1},
		{"invalid UTF-8 kept", []string{"\xff\xfe"}, "\xff\xfe\n", 1},
		{"1 MiB line", []string{long}, long + "\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := batchOf(tt.lines...)
			if got := string(b.Bytes()); got != tt.want {
				t.Errorf("Bytes() = %.40q (%d bytes), want %.40q (%d bytes)", got, len(got), tt.want, len(tt.want))
			}
			if b.Lines() != tt.n || b.Len() != len(tt.want) {
				t.Errorf("Lines(), Len() = %d, %d; want %d, %d", b.Lines(), b.Len(), tt.n, len(tt.want))
			}
		})
	}
}

// AddLines gives exactly what one Add per line gives, on random blocks
// mixing lines that are copied unchanged with every kind that is not.
func TestBatchAddLinesMatchesAdd(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 2))
	pieces := []string{"a", "b c", " ", "\t", "\r", "\n", "\r\n", "\n", "\xff", "\xEF\xBB\xBF", "https://example.org/p", "\r\r\n", "\r "}
	for round := range 2000 {
		var p []byte
		for range rng.IntN(40) {
			p = append(p, pieces[rng.IntN(len(pieces))]...)
		}
		if round%50 == 0 {
			p = append(p, bytes.Repeat([]byte("L"), rng.IntN(100<<10))...)
			p = append(p, pieces[rng.IntN(len(pieces))]...)
		}
		want, got := batchOf("x"), batchOf("x") // AddLines appends to what is there
		wantN := 0
		for rest := p; len(rest) > 0; {
			i := bytes.IndexByte(rest, '\n') + 1
			if i == 0 {
				i = len(rest)
			}
			if want.Add(rest[:i]) {
				wantN++
			}
			rest = rest[i:]
		}
		if n := got.AddLines(p); n != wantN || !bytes.Equal(got.Bytes(), want.Bytes()) || got.Lines() != want.Lines() || got.Len() != want.Len() {
			t.Fatalf("seed %d: AddLines(%q) = %d, batch %q with %d lines; want %d, %q with %d lines",
				seed, p, n, got.Bytes(), got.Lines(), wantN, want.Bytes(), want.Lines())
		}
	}
}

func TestBatchAddBatchReset(t *testing.T) {
	b, o := batchOf("a"), batchOf("b", "c")
	b.AddBatch(o)
	if got, want := string(b.Bytes()), "a\nb\nc\n"; got != want || b.Lines() != 3 {
		t.Errorf("after AddBatch: %q, %d lines; want %q, 3 lines", got, b.Lines(), want)
	}
	b.Reset()
	if b.Len() != 0 || b.Lines() != 0 {
		t.Errorf("after Reset: %d bytes, %d lines; want 0, 0", b.Len(), b.Lines())
	}
}

func TestAppendCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "check.txt")
	a, warnings := open(t, path, checkpoint.AppendOptions{})
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("checkpoint not created on open: %v", err)
	}
	for _, b := range []*checkpoint.Batch{batchOf("u1", "u2\r\n"), batchOf(), batchOf("", "u3")} {
		if err := a.Append(b); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	if got, want := readFile(t, path), "u1\nu2\nu3\n"; got != want {
		t.Errorf("checkpoint = %q, want %q", got, want)
	}
	if len(*warnings) != 0 {
		t.Errorf("warnings = %q, want none", *warnings)
	}
	if a.Path() != path {
		t.Errorf("Path() = %q, want %q", a.Path(), path)
	}
}

func TestAppendRepairsTornTail(t *testing.T) {
	long := strings.Repeat("y", 1<<20)
	tests := []struct {
		name, before, want string
		dropped            int // bytes the warning reports; 0: no warning
	}{
		{"whole lines", "a\nb\n", "a\nb\nnew\n", 0},
		{"empty", "", "new\n", 0},
		{"torn last line", "a\nb\nhttp://x", "a\nb\nnew\n", len("http://x")},
		{"torn CRLF", "a\r\nb\r", "a\r\nnew\n", 2},
		{"no newline at all", "frag", "new\n", 4},
		{"torn 1 MiB line", "a\n" + long, "a\nnew\n", len(long)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "check.txt")
			if err := os.WriteFile(path, []byte(tt.before), 0o666); err != nil {
				t.Fatal(err)
			}
			a, warnings := open(t, path, checkpoint.AppendOptions{})
			if err := a.Append(batchOf("new")); err != nil {
				t.Fatalf("Append: %v", err)
			}
			if got := readFile(t, path); got != tt.want {
				t.Errorf("checkpoint = %.40q (%d bytes), want %.40q", got, len(got), tt.want)
			}
			if tt.dropped == 0 {
				if len(*warnings) != 0 {
					t.Errorf("warnings = %q, want none", *warnings)
				}
				if _, err := os.Stat(path + ".torn"); err == nil {
					t.Errorf("%s.torn exists with nothing torn", path)
				}
				return
			}
			// Nothing is destroyed: the fragment is in CHECKPOINT.torn.
			if got, want := readFile(t, path+".torn"), tt.before[len(tt.before)-tt.dropped:]+"\n"; got != want {
				t.Errorf("%s.torn = %.40q (%d bytes), want the fragment %.40q and a newline", path, got, len(got), want)
			}
			if len(*warnings) != 1 {
				t.Fatalf("warnings = %q, want one", *warnings)
			}
			w := (*warnings)[0]
			if !strings.Contains(w, path) || !strings.Contains(w, fmt.Sprintf("cut off %d bytes", tt.dropped)) ||
				!strings.Contains(w, "saved to "+path+".torn") || len(w) > 400 {
				t.Errorf("warning = %q, want the path, %q, where it was saved and at most 400 bytes", w, fmt.Sprintf("cut off %d bytes", tt.dropped))
			}
		})
	}
}

// A process that crashed mid-write between two of our batches leaves a
// fragment: the next batch must not be glued onto it.
func TestAppendRepairsTornTailBetweenBatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "check.txt")
	a, warnings := open(t, path, checkpoint.AppendOptions{})
	if err := a.Append(batchOf("a")); err != nil {
		t.Fatal(err)
	}
	other, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	other.WriteString("b\nfrag")
	other.Close()
	if err := a.Append(batchOf("c")); err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, path), "a\nb\nc\n"; got != want {
		t.Errorf("checkpoint = %q, want %q", got, want)
	}
	if len(*warnings) != 1 || !strings.Contains((*warnings)[0], "cut off 4 bytes") {
		t.Errorf("warnings = %q, want one about 4 bytes", *warnings)
	}
	// A second crash, a second fragment: appended after the first.
	other, err = os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	other.WriteString("d\nfrag2")
	other.Close()
	if err := a.Append(batchOf("e")); err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, path), "a\nb\nc\nd\ne\n"; got != want {
		t.Errorf("checkpoint = %q, want %q", got, want)
	}
	if got, want := readFile(t, path+".torn"), "frag\nfrag2\n"; got != want {
		t.Errorf("%s.torn = %q, want both fragments %q", path, got, want)
	}
}

// A torn tail that cannot be saved (CHECKPOINT.torn is a directory) is not
// cut: opening fails with a message naming both files, and the checkpoint
// keeps every byte.
func TestAppendTornUnsaved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "check.txt")
	if err := os.WriteFile(path, []byte("a\nfrag"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path+".torn", 0o777); err != nil {
		t.Fatal(err)
	}
	a, err := checkpoint.OpenAppender(path, checkpoint.AppendOptions{})
	if err == nil {
		a.Close()
		t.Fatal("OpenAppender succeeded; want an error")
	}
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, path+".torn") || !strings.Contains(msg, "nothing was cut") {
		t.Errorf("error %q; want both files named and that nothing was cut", msg)
	}
	if got := readFile(t, path); got != "a\nfrag" {
		t.Errorf("checkpoint = %q, want it untouched", got)
	}
}

func TestOpenAppenderErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, path string
		is         error
	}{
		{"missing directory", filepath.Join(dir, "nodir", "check.txt"), fs.ErrNotExist},
		{"a directory", dir, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := checkpoint.OpenAppender(tt.path, checkpoint.AppendOptions{})
			if err == nil {
				a.Close()
				t.Fatalf("OpenAppender(%s) = nil error, want one", tt.path)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "open checkpoint "+tt.path+": ") || strings.Count(msg, tt.path) != 1 {
				t.Errorf("error = %q, want it to start with %q and name the path once", msg, "open checkpoint "+tt.path+": ")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error = %v, want errors.Is %v", err, tt.is)
			}
		})
	}
}

// faultyFile fails the way a full disk or a dying device would.
type faultyFile struct {
	checkpoint.SyncWriter
	writeAfter int  // write this many bytes, then fail; <0: don't fail
	failSync   bool // fail Sync
}

var errInjected = errors.New("injected failure")

func (f *faultyFile) Write(p []byte) (int, error) {
	if f.writeAfter < 0 {
		return f.SyncWriter.Write(p)
	}
	n, _ := f.SyncWriter.Write(p[:min(f.writeAfter, len(p))])
	return n, errInjected
}

func (f *faultyFile) Sync() error {
	if f.failSync {
		return errInjected
	}
	return f.SyncWriter.Sync()
}

func TestAppendFailures(t *testing.T) {
	tests := []struct {
		name  string
		fault faultyFile
		want  string // "write" or "fsync", the step named in the error
	}{
		{"write fails at once", faultyFile{writeAfter: 0}, "write"},
		{"write fails midway", faultyFile{writeAfter: 5}, "write"},
		{"fsync fails", faultyFile{writeAfter: -1, failSync: true}, "fsync"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "check.txt")
			if err := os.WriteFile(path, []byte("old\n"), 0o666); err != nil {
				t.Fatal(err)
			}
			fault := tt.fault
			a, _ := open(t, path, checkpoint.AppendOptions{Wrap: func(w checkpoint.SyncWriter) checkpoint.SyncWriter {
				fault.SyncWriter = w
				return &fault
			}})
			err := a.Append(batchOf("line one", "line two"))
			if !errors.Is(err, errInjected) || !strings.HasPrefix(err.Error(), tt.want+" checkpoint "+path) {
				t.Fatalf("Append error = %v, want the injected failure, starting %q", err, tt.want+" checkpoint "+path)
			}
			// Broken for good: a later batch is not written either.
			if err2 := a.Append(batchOf("later")); !errors.Is(err2, errInjected) {
				t.Errorf("second Append error = %v, want the first error again", err2)
			}
			got := readFile(t, path)
			if !strings.HasSuffix(got, "\n") || strings.Contains(got, "later") {
				t.Errorf("checkpoint = %q, want whole lines only and not the later batch", got)
			}
			if tt.want == "write" && got != "old\n" {
				t.Errorf("checkpoint = %q after a failed write, want the partial batch cut off: %q", got, "old\n")
			}
		})
	}
}

// Two Appenders on one file (two open file descriptions: flock excludes
// them as it does two processes) never interleave parts of lines.
func TestAppendConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "check.txt")
	const writers, batches, perBatch = 2, 200, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		a, _ := open(t, path, checkpoint.AppendOptions{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range batches {
				b := new(checkpoint.Batch)
				for j := range perBatch {
					// Lines long enough that a write is not one page.
					b.Add(fmt.Appendf(nil, "w%d-%d-%d-%s", w, i, j, strings.Repeat("z", 100*(j%7))))
				}
				if err := a.Append(b); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	data := readFile(t, path)
	lines := strings.Split(strings.TrimSuffix(data, "\n"), "\n")
	if len(lines) != writers*batches*perBatch {
		t.Fatalf("%d lines, want %d", len(lines), writers*batches*perBatch)
	}
	want := map[string]bool{}
	for w := range writers {
		for i := range batches {
			for j := range perBatch {
				want[fmt.Sprintf("w%d-%d-%d-%s", w, i, j, strings.Repeat("z", 100*(j%7)))] = true
			}
		}
	}
	for _, l := range lines {
		if !want[l] {
			t.Fatalf("line %.60q is not one of the lines written, or is repeated", l)
		}
		delete(want, l)
	}
}

func TestAppendDevFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	a, err := checkpoint.OpenAppender("/dev/full", checkpoint.AppendOptions{})
	if err != nil {
		t.Skipf("cannot open /dev/full: %v", err)
	}
	defer a.Close()
	err = a.Append(batchOf("x"))
	if err == nil || !strings.Contains(err.Error(), "write checkpoint /dev/full") {
		t.Errorf("Append to /dev/full: error %v, want a write error naming the file", err)
	}
}

func TestAppendEmptyBatchWritesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "check.txt")
	a, _ := open(t, path, checkpoint.AppendOptions{})
	if err := a.Append(batchOf("", "  ")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != "" {
		t.Errorf("checkpoint = %q, want empty", got)
	}
	if !bytes.Equal(batchOf("\t").Bytes(), nil) {
		t.Errorf("a blank line made a non-empty batch")
	}
}

// Appenders racing a process that crashes mid-write, over and over: the
// torn-tail repair of one Appender (find the fragment, save it, cut it off)
// must not run while another appends, or its cut drops that batch. Under
// the lock every line appended is in the file exactly once, whole, and
// every fragment went to CHECKPOINT.torn and nowhere else.
func TestAppendConcurrentRepair(t *testing.T) {
	path := filepath.Join(t.TempDir(), "check.txt")
	// Each writer appends at least minBatches batches, and goes on until
	// the crasher has crashed minCrashes times (or given up).
	const writers, minBatches, perBatch, minCrashes = 2, 100, 10, 100
	var crashes atomic.Int64
	var crasherDone atomic.Bool
	batches := make([]int, writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	repairs := make([]*[]string, writers)
	for w := range writers {
		a, warnings := open(t, path, checkpoint.AppendOptions{})
		repairs[w] = warnings
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < minBatches || crashes.Load() < minCrashes && !crasherDone.Load(); i++ {
				b := new(checkpoint.Batch)
				for j := range perBatch {
					b.Add(fmt.Appendf(nil, "w%d-%d-%d", w, i, j))
				}
				if err := a.Append(b); err != nil {
					errs <- err
					return
				}
				batches[w] = i + 1
			}
		}()
	}
	// The crashing process: under the lock, as a real ckmark's write is,
	// it leaves a fragment without a newline and dies (unlocks); once an
	// Appender has repaired it, it crashes again.
	stop, crashed := make(chan struct{}), make(chan int)
	go func() {
		n := 0
		defer func() { crasherDone.Store(true); crashed <- n }()
		f, err := os.OpenFile(path, os.O_APPEND|os.O_RDWR, 0)
		if err != nil {
			errs <- err
			return
		}
		defer f.Close()
		for {
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
				errs <- err
				return
			}
			_, err := fmt.Fprintf(f, "frag%d", n)
			syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			if err != nil {
				errs <- err
				return
			}
			n++
			crashes.Add(1)
			for repaired := false; !repaired; {
				select {
				case <-stop:
					return
				default:
				}
				var last [1]byte
				st, err := f.Stat()
				repaired = err == nil && st.Size() > 0 && func() bool {
					_, err := f.ReadAt(last[:], st.Size()-1)
					return err == nil && last[0] == '\n'
				}()
			}
		}
	}()
	wg.Wait()
	close(stop)
	n := <-crashed
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fixed := 0
	for _, w := range repairs {
		fixed += len(*w)
	}
	t.Logf("%d crashes, %d torn tails repaired while the other writer appended", n, fixed)
	last, _ := open(t, path, checkpoint.AppendOptions{})
	if err := last.Append(batchOf("end")); err != nil { // repairs a last fragment
		t.Fatal(err)
	}

	want := map[string]bool{"end": true}
	for w := range writers {
		for i := range batches[w] {
			for j := range perBatch {
				want[fmt.Sprintf("w%d-%d-%d", w, i, j)] = true
			}
		}
	}
	for _, l := range strings.SplitAfter(readFile(t, path), "\n") {
		if l == "" {
			continue
		}
		if !strings.HasSuffix(l, "\n") || !want[strings.TrimSuffix(l, "\n")] {
			t.Fatalf("line %.60q is not one of the lines appended, or is repeated", l)
		}
		delete(want, strings.TrimSuffix(l, "\n"))
	}
	if len(want) > 0 {
		t.Errorf("%d lines appended are missing from the checkpoint (cut off with a fragment?)", len(want))
	}
	// Crashes with no repair between them glue their fragments together.
	frags := regexp.MustCompile(`^(frag[0-9]+)+\n$`)
	for _, l := range strings.SplitAfter(readFile(t, path+".torn"), "\n") {
		if l != "" && !frags.MatchString(l) {
			t.Fatalf("%s.torn holds %.60q, which is not made of fragments", path, l)
		}
	}
}
