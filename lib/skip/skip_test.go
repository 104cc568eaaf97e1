package skip_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"

	"github.com/ck-tools/ck/lib/lines"
	"github.com/ck-tools/ck/lib/shard"
	"github.com/ck-tools/ck/lib/skip"
)

// files writes name -> content into a fresh directory and returns it.
func files(t *testing.T, fs map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range fs {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// run runs skip.Main in dir (file arguments are joined to it) and returns
// stdout, stderr and the exit status.
func run(t *testing.T, dir string, stdin io.Reader, args ...string) (string, string, int) {
	t.Helper()
	for i, a := range args {
		if strings.HasSuffix(a, ".txt") {
			args[i] = filepath.Join(dir, a)
		}
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var stdout, stderr bytes.Buffer
	code := skip.Main(context.Background(), args, stdin, &stdout, &stderr)
	return stdout.String(), strings.ReplaceAll(stderr.String(), dir+string(filepath.Separator), ""), code
}

func TestMain(t *testing.T) {
	tests := []struct {
		name       string
		files      map[string]string
		stdin      string
		args       []string
		wantOut    string
		wantErr    string // regexp; "" means stderr must be empty
		wantStatus int
	}{
		{"no checkpoint prints all", map[string]string{"in.txt": "a\nb\n"}, "",
			[]string{"in.txt"}, "a\nb\n", "", 0},
		{"after last line", map[string]string{"in.txt": "a\nb\nc\nd\n", "ck.txt": "a\nb\n"}, "",
			[]string{"-c", "ck.txt", "in.txt"}, "c\nd\n", "", 0},
		{"k-th occurrence", map[string]string{"in.txt": "x\ny\nx\nz\nx\nw\n", "ck.txt": "x\ny\nx\n"}, "",
			[]string{"-c", "ck.txt", "in.txt"}, "z\nx\nw\n", "", 0},
		{"checkpoint done", map[string]string{"in.txt": "a\nb\n", "ck.txt": "a\nb\n"}, "",
			[]string{"-c", "ck.txt", "in.txt"}, "", "", 0},
		{"missing checkpoint", map[string]string{"in.txt": "a\nb\n"}, "",
			[]string{"-c", "none.txt", "in.txt"}, "a\nb\n", "", 0},
		{"empty checkpoint", map[string]string{"in.txt": "a\nb\n", "ck.txt": ""}, "",
			[]string{"--checkpoint", "ck.txt", "in.txt"}, "a\nb\n", "", 0},
		{"torn checkpoint", map[string]string{"in.txt": "a\nb\nc\n", "ck.txt": "a\nb"}, "",
			[]string{"-c", "ck.txt", "in.txt"}, "b\nc\n", `^ckskip: warning: checkpoint ck.txt: .*torn`, 0},
		{"key rule", map[string]string{"in.txt": " a\t\r\nb\n", "ck.txt": "\xEF\xBB\xBFa  \n\n"}, "",
			[]string{"-c", "ck.txt", "in.txt"}, "b\n", "", 0},
		{"not in input", map[string]string{"in.txt": "a\nb\n", "ck.txt": "a\nq\n\n"}, "",
			[]string{"-c", "ck.txt", "in.txt"}, "", `^ckskip: ck.txt:2: last line "q" is not in the input; printed nothing: .*--set\n$`, 1},
		{"too few occurrences", map[string]string{"in.txt": "a\nb\na\n", "ck.txt": "a\na\na\n"}, "",
			[]string{"-c", "ck.txt", "in.txt"}, "", `^ckskip: ck.txt:3: last line "a" occurs 3 times in the checkpoint but 2 times in the input; printed nothing`, 1},
		{"set", map[string]string{"in.txt": "a\nb\nc\nd\nb\n", "ck.txt": "d\nb\n"}, "",
			[]string{"--set", "-c", "ck.txt", "in.txt"}, "a\nc\n", "", 0},
		{"set missing checkpoint", map[string]string{"in.txt": "a\n"}, "",
			[]string{"--set", "-c", "none.txt", "in.txt"}, "a\n", "", 0},
		{"stdin", nil, "a\nb\n", nil, "a\nb\n", "", 0},
		{"files in order and -", map[string]string{"1.txt": "a\nb", "2.txt": "c\n"}, "s\n",
			[]string{"1.txt", "-", "2.txt", "-"}, "a\nb\ns\nc\n", "", 0},
		{"resume point in a later file", map[string]string{"1.txt": "a\nb\n", "2.txt": "c\nd\n", "ck.txt": "a\nb\nc\n"}, "",
			[]string{"-c", "ck.txt", "1.txt", "2.txt"}, "d\n", "", 0},
		{"unterminated last line per file", map[string]string{"1.txt": "a", "2.txt": "b", "ck.txt": "a\n"}, "",
			[]string{"-c", "ck.txt", "1.txt", "2.txt"}, "b\n", "", 0},
		{"crlf bom blank lines", map[string]string{"in.txt": "\xEF\xBB\xBFa\r\n\r\n  \n\tb \r\nc\r"}, "",
			[]string{"in.txt"}, "a\n\tb \nc\r\n", "", 0},
		{"bom only at the start", map[string]string{"in.txt": "a\n\xEF\xBB\xBFb\n"}, "",
			[]string{"in.txt"}, "a\n\xEF\xBB\xBFb\n", "", 0},
		{"invalid utf-8", map[string]string{"in.txt": "\xff\n\xc3\x28\n", "ck.txt": "\xff\n"}, "",
			[]string{"-c", "ck.txt", "in.txt"}, "\xc3\x28\n", "", 0},
		{"shard 0/1 keeps all", map[string]string{"in.txt": "a\nb\n"}, "",
			[]string{"--shard", "0/1", "in.txt"}, "a\nb\n", "", 0},
		{"missing input file", map[string]string{"in.txt": "a\n"}, "",
			[]string{"in.txt", "none.txt"}, "", `^ckskip: open none.txt: no such file or directory\n$`, 2},
		{"input is a directory", nil, "",
			[]string{"."}, "", `^ckskip: read \.: is a directory\n$`, 2},
		{"checkpoint is a directory", map[string]string{"in.txt": "a\n"}, "",
			[]string{"-c", ".", "in.txt"}, "", `^ckskip: checkpoint \.: not a regular file\n$`, 2},
		{"bad shard", nil, "", []string{"--shard", "2/2"}, "", `^ckskip: --shard 2/2: K must be below N`, 2},
		{"bad shard zero", nil, "", []string{"--shard", "0/0"}, "", `^ckskip: --shard 0/0: N must be at least 1`, 2},
		{"bad shard form", nil, "", []string{"--shard", "1"}, "", `^ckskip: --shard 1: want K/N`, 2},
		{"unknown flag", nil, "", []string{"--nope"}, "", `unknown flag --nope`, 2},
		{"help", nil, "", []string{"--help"}, "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := files(t, tt.files)
			out, errOut, code := run(t, dir, strings.NewReader(tt.stdin), tt.args...)
			if tt.name == "help" {
				if !strings.HasPrefix(out, "Usage: ckskip") {
					t.Errorf("stdout = %q, want the usage", out)
				}
			} else if out != tt.wantOut {
				t.Errorf("stdout = %q, want %q", out, tt.wantOut)
			}
			if tt.wantErr == "" && errOut != "" || tt.wantErr != "" && !regexp.MustCompile(tt.wantErr).MatchString(errOut) {
				t.Errorf("stderr = %q, want it to match %q", errOut, tt.wantErr)
			}
			if code != tt.wantStatus {
				t.Errorf("status = %d, want %d", code, tt.wantStatus)
			}
		})
	}
}

// TestShardsPartition: the N shards of a list are disjoint and together are
// the list, in after mode and in set mode, and each line is in the shard
// package's shard of its key.
func TestShardsPartition(t *testing.T) {
	var in strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	dir := files(t, map[string]string{"in.txt": in.String(), "ck.txt": ""})
	for _, mode := range []string{"-c", "--set"} {
		for _, n := range []int{1, 2, 3, 7} {
			seen := map[string]int{}
			for k := range n {
				spec := fmt.Sprintf("%d/%d", k, n)
				args := []string{"--shard", spec, "-c", "ck.txt", "in.txt"}
				if mode == "--set" {
					args = append(args, "--set")
				}
				out, errOut, code := run(t, dir, nil, args...)
				if code != 0 || errOut != "" {
					t.Fatalf("--shard %s: status %d, stderr %q", spec, code, errOut)
				}
				for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
					if l == "" {
						continue
					}
					seen[l]++
					if got := shard.Of([]byte(l), uint64(n)); got != uint64(k) {
						t.Errorf("%s: line %q printed in shard %d, its key hashes to %d", mode, l, k, got)
					}
				}
			}
			for i := range 1000 {
				if l := fmt.Sprintf("line %d", i); seen[l] != 1 {
					t.Errorf("%s N=%d: %q printed by %d shards, want exactly 1", mode, n, l, seen[l])
				}
			}
		}
	}
}

// TestShardBeforeResume: the shard is applied before the resume point is
// looked for, so a shard's checkpoint resumes within the shard.
func TestShardBeforeResume(t *testing.T) {
	var in strings.Builder
	var mine []string
	for i := range 200 {
		l := fmt.Sprintf("u%d", i)
		fmt.Fprintln(&in, l)
		if shard.Of([]byte(l), 3) == 1 {
			mine = append(mine, l)
		}
	}
	if len(mine) < 10 {
		t.Fatalf("only %d lines in shard 1/3", len(mine))
	}
	dir := files(t, map[string]string{"in.txt": in.String(), "ck.txt": strings.Join(mine[:5], "\n") + "\n"})
	out, errOut, code := run(t, dir, nil, "--shard", "1/3", "-c", "ck.txt", "in.txt")
	if want := strings.Join(mine[5:], "\n") + "\n"; out != want || code != 0 || errOut != "" {
		t.Errorf("got %q, status %d, stderr %q; want %q, 0, no message", out, code, errOut, want)
	}
	// A checkpoint of another shard does not fit.
	other := "u0\n"
	if shard.Of([]byte("u0"), 3) == 1 {
		other = "u1\n"
	}
	dir = files(t, map[string]string{"in.txt": in.String(), "ck.txt": other})
	out, errOut, code = run(t, dir, nil, "--shard", "1/3", "-c", "ck.txt", "in.txt")
	if out != "" || code != 1 || !strings.Contains(errOut, "another shard") {
		t.Errorf("checkpoint of another shard: got %q, status %d, stderr %q; want nothing, 1, a message", out, code, errOut)
	}
}

// TestLongLines: 1 MiB and 3 MiB lines, longer than a read, in the input
// and in the checkpoint.
func TestLongLines(t *testing.T) {
	mib := strings.Repeat("x", 1<<20)
	big := strings.Repeat("y", 3<<20+5)
	in := "a\n" + mib + "\n" + big + "\r\n" + "  " + mib + "\n" + big
	tests := []struct {
		name    string
		ck      string
		args    []string
		wantOut string
	}{
		{"all", "", nil, "a\n" + mib + "\n" + big + "\n  " + mib + "\n" + big + "\n"},
		{"after 1 MiB line", mib + "\n", []string{"-c", "ck.txt"}, big + "\n  " + mib + "\n" + big + "\n"},
		{"after second 1 MiB line", mib + "\n" + mib + "\n", []string{"-c", "ck.txt"}, big + "\n"},
		{"set", mib + "\n", []string{"--set", "-c", "ck.txt"}, "a\n" + big + "\n" + big + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := files(t, map[string]string{"in.txt": in, "ck.txt": tt.ck})
			out, errOut, code := run(t, dir, nil, append(tt.args, "in.txt")...)
			if out != tt.wantOut || code != 0 || errOut != "" {
				t.Errorf("got %d bytes (%.30q...), status %d, stderr %q; want %d bytes, 0, no message",
					len(out), out, code, errOut, len(tt.wantOut))
			}
		})
	}
}

// reference is ckskip written the obvious way, one line at a time with
// lines.Reader, to compare the block-wise implementation against.
func reference(in, ck []byte, set bool) (string, bool) {
	var keys [][]byte
	r := lines.NewReader(bytes.NewReader(ck))
	for {
		line, term, err := r.Next()
		if err != nil || !term {
			break
		}
		if k := lines.Key(line); len(k) > 0 {
			keys = append(keys, bytes.Clone(k))
		}
	}
	var all [][]byte
	r = lines.NewReader(bytes.NewReader(in))
	for {
		line, _, err := r.Next()
		if err != nil {
			break
		}
		all = append(all, bytes.Clone(line))
	}
	var out strings.Builder
	if set {
		for _, line := range all {
			k := lines.Key(line)
			found := false
			for _, c := range keys {
				found = found || bytes.Equal(c, k)
			}
			if len(k) > 0 && !found {
				out.Write(line)
				out.WriteByte('\n')
			}
		}
		return out.String(), true
	}
	start := 0
	if len(keys) > 0 {
		last, want := keys[len(keys)-1], 0
		for _, c := range keys {
			if bytes.Equal(c, last) {
				want++
			}
		}
		start = -1
		for i, line := range all {
			if bytes.Equal(lines.Key(line), last) {
				if want--; want == 0 {
					start = i + 1
					break
				}
			}
		}
		if start < 0 {
			return "", false
		}
	}
	for _, line := range all[start:] {
		if len(lines.Key(line)) > 0 {
			out.Write(line)
			out.WriteByte('\n')
		}
	}
	return out.String(), true
}

// TestAgainstReference compares ckskip with the reference on random lists
// of awkward lines, read from stdin in random small pieces so that lines,
// "\r\n" endings and the BOM are split across reads.
func TestAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	atoms := []string{"a", "b", "c", " ", "\t", "\r", "\n", "\r\n", "\n", "\n", "ab", "\xff", "\r\r\n", "\r ", "\r\r"}
	gen := func(n int) string {
		var b strings.Builder
		if rng.IntN(4) == 0 {
			b.WriteString("\xEF\xBB\xBF")
		}
		for range n {
			b.WriteString(atoms[rng.IntN(len(atoms))])
		}
		return b.String()
	}
	for i := range 500 {
		in, ck := gen(rng.IntN(60)), gen(rng.IntN(20))
		set := i%3 == 0
		dir := files(t, map[string]string{"ck.txt": ck})
		args := []string{"-c", "ck.txt"}
		if set {
			args = append(args, "--set")
		}
		var stdin io.Reader = strings.NewReader(in)
		if i%2 == 0 {
			stdin = iotest.OneByteReader(stdin)
		} else {
			stdin = iotest.HalfReader(stdin)
		}
		out, errOut, code := run(t, dir, stdin, args...)
		want, fits := reference([]byte(in), []byte(ck), set)
		wantCode := 0
		if !fits {
			wantCode = 1
		}
		if out != want || code != wantCode {
			t.Fatalf("input %q, checkpoint %q, set %v:\ngot  %q status %d (%s)\nwant %q status %d",
				in, ck, set, out, code, errOut, want, wantCode)
		}
	}
}

type failWriter struct{ err error }

func (w failWriter) Write(p []byte) (int, error) { return 0, w.err }

func TestWriteErrors(t *testing.T) {
	dir := files(t, map[string]string{"in.txt": "a\nb\n"})
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantErr    string
	}{
		{"closed pipe", syscall.EPIPE, 141, ""},
		{"disk full", syscall.ENOSPC, 2, "ckskip: write standard output: no space left on device\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := skip.Main(context.Background(), []string{filepath.Join(dir, "in.txt")},
				strings.NewReader(""), failWriter{tt.err}, &stderr)
			if code != tt.wantStatus || stderr.String() != tt.wantErr {
				t.Errorf("status %d, stderr %q; want %d, %q", code, stderr.String(), tt.wantStatus, tt.wantErr)
			}
		})
	}
}

func TestReadError(t *testing.T) {
	var stdout, stderr bytes.Buffer
	in := io.MultiReader(strings.NewReader("a\n"), iotest.ErrReader(errors.New("disk on fire")))
	code := skip.Main(context.Background(), nil, in, &stdout, &stderr)
	if code != 2 || stderr.String() != "ckskip: read standard input: disk on fire\n" {
		t.Errorf("status %d, stderr %q; want 2 and the error", code, stderr.String())
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	pr, pw := io.Pipe() // never written: only the cancellation can end the run
	defer pw.Close()
	var stdout, stderr bytes.Buffer
	if code := skip.Main(ctx, nil, pr, &stdout, &stderr); code != 130 {
		t.Errorf("status %d after cancel, want 130", code)
	}
}
