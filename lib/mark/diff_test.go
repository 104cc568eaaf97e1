package mark_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ck-tools/ck/lib/checkpoint"
	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/lines"
	"github.com/ck-tools/ck/lib/mark"
)

// reference is ckmark's original line-by-line reader, kept as the
// definition of what ckmark records: every line lines.Reader yields, added
// with Batch.Add; at the end of input an unterminated last line with a
// non-blank key is not recorded but quoted in a warning; a read error
// drops the partial line and is reported. It returns the checkpoint, the
// stderr and the exit status ckmark must produce for the same input.
func reference(stdin io.Reader) (file, stderr string, status int) {
	var b checkpoint.Batch
	var log strings.Builder
	lr := lines.NewReader(stdin)
	for {
		line, terminated, err := lr.Next()
		if err == io.EOF {
			return string(b.Bytes()), "", cli.ExitOK
		}
		if err != nil {
			return string(b.Bytes()), fmt.Sprintf("ckmark: read stdin: %v\n", err), cli.ExitUsage
		}
		if !terminated {
			if len(lines.Key(line)) > 0 {
				more := ""
				if len(line) > 80 {
					more = fmt.Sprintf("... (%d bytes)", len(line))
				}
				fmt.Fprintf(&log, "ckmark: stdin: last line has no newline; not recorded: %q%s\n", line[:min(len(line), 80)], more)
			}
			return string(b.Bytes()), log.String(), cli.ExitOK
		}
		b.Add(line)
	}
}

// chunkReader returns its input in reads of random sizes from 1 to max
// bytes (and sometimes empty reads), then err (io.EOF, or a failure) either
// together with the last bytes or on a read of its own.
type chunkReader struct {
	data     []byte
	rng      *rand.Rand
	max      int
	err      error
	errAlong bool
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, c.err
	}
	if c.rng.IntN(20) == 0 {
		return 0, nil
	}
	n := copy(p, c.data[:min(len(c.data), 1+c.rng.IntN(c.max))])
	c.data = c.data[n:]
	if len(c.data) == 0 && c.errAlong {
		return n, c.err
	}
	return n, nil
}

// randomInput makes an input that exercises every case of ckmark's line
// handling: LF and CRLF endings, lone CRs, empty lines, lines of spaces
// and tabs, leading and trailing blanks, invalid UTF-8, BOMs (at the start
// and elsewhere), long lines, and a last line with or without a newline.
func randomInput(rng *rand.Rand, long bool) []byte {
	var in bytes.Buffer
	if rng.IntN(4) == 0 {
		in.WriteString("\xEF\xBB\xBF")
	}
	pieces := []string{"a", "url", "https://example.org/x", " ", "\t", "\r", "\xff\xfe", "\xEF\xBB\xBF", "é", "0"}
	for range rng.IntN(200) {
		switch rng.IntN(12) {
		case 0: // empty or blank line
			in.WriteString([]string{"", " ", "\t", " \t ", "\r", "\r \r", "\r\r"}[rng.IntN(7)])
		case 1:
			if long {
				in.Write(bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, 1+rng.IntN(600<<10)))
			}
		}
		for range rng.IntN(6) {
			in.WriteString(pieces[rng.IntN(len(pieces))])
		}
		if rng.IntN(3) == 0 {
			in.WriteString("\r\n")
		} else {
			in.WriteString("\n")
		}
	}
	switch rng.IntN(4) {
	case 0: // unterminated last line
		for range 1 + rng.IntN(4) {
			in.WriteString(pieces[rng.IntN(len(pieces))])
		}
	case 1: // a long one
		in.WriteString(strings.Repeat("t", 70+rng.IntN(30)))
	}
	return in.Bytes()
}

// TestMatchesReference feeds random inputs to Main, through one-byte reads
// and through reads of random sizes, and requires exactly the checkpoint,
// stderr and exit status of the reference line-by-line reader.
func TestMatchesReference(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	failure := errors.New("device on fire")
	rounds := 150
	if testing.Short() {
		rounds = 30
	}
	for i := range rounds {
		long := i%10 == 9
		in := randomInput(rng, long)
		readers := []struct {
			name string
			make func() io.Reader
		}{
			{"chunks", func() io.Reader {
				return &chunkReader{data: in, rng: rand.New(rand.NewPCG(seed, uint64(i))), max: 1 + (i%7)*(i%7)*(i%7)*300, err: io.EOF, errAlong: i%2 == 0}
			}},
			{"chunks then failure", func() io.Reader {
				return &chunkReader{data: in, rng: rand.New(rand.NewPCG(seed, uint64(i))), max: 1 + i%5*1000, err: failure, errAlong: i%3 == 0}
			}},
			{"data with EOF", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(in)) }},
		}
		if !long {
			readers = append(readers, struct {
				name string
				make func() io.Reader
			}{"one byte", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(in)) }})
		}
		for _, rd := range readers {
			wantFile, wantErr, wantStatus := reference(rd.make())
			path := filepath.Join(dir, fmt.Sprintf("c%d-%s", i, rd.name))
			window := []string{"0", "1ms", "100ms"}[i%3]
			var stdout, stderr bytes.Buffer
			status := mark.Main(context.Background(), []string{"-t", "--sync-every", window, path}, rd.make(), &stdout, &stderr)
			file := readFile(t, path)
			if file != wantFile || stderr.String() != wantErr || status != wantStatus || stdout.String() != wantFile {
				t.Fatalf("round %d, %s reads of %.200q (%d bytes):\ncheckpoint %.200q (%d bytes)\nwant       %.200q (%d bytes)\nstdout equal: %v\nstderr %q\nwant   %q\nstatus %d, want %d",
					i, rd.name, in, len(in), file, len(file), wantFile, len(wantFile), stdout.String() == file,
					stderr.String(), wantErr, status, wantStatus)
			}
		}
	}
}

// TestLongLines checks lines far longer than any read buffer, split
// across reads at random places.
func TestLongLines(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var in bytes.Buffer
	for i := range 6 {
		in.WriteString(strings.Repeat(string(rune('a'+i)), 1<<20+rng.IntN(1<<20)))
		in.WriteString([]string{"\n", "\r\n", "  \n"}[i%3])
		in.WriteString(strings.Repeat(" ", i) + "\n")
	}
	in.WriteString(strings.Repeat("z", 3<<20))
	wantFile, wantErr, _ := reference(bytes.NewReader(in.Bytes()))
	path := filepath.Join(t.TempDir(), "check.txt")
	var stderr bytes.Buffer
	src := &chunkReader{data: in.Bytes(), rng: rng, max: 200 << 10, err: io.EOF}
	if s := mark.Main(context.Background(), []string{path}, src, io.Discard, &stderr); s != 0 {
		t.Fatalf("status %d", s)
	}
	if got := readFile(t, path); got != wantFile || stderr.String() != wantErr {
		t.Errorf("checkpoint %d bytes, stderr %q; want %d bytes, %q", len(got), stderr.String(), len(wantFile), wantErr)
	}
	if !strings.Contains(wantErr, "(3145728 bytes)") {
		t.Errorf("reference warning %q does not give the tail's length", wantErr)
	}
}
