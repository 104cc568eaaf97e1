package lines_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/ck-tools/ck/lib/lines"
)

// chunks returns its data in reads of random sizes from 1 to max bytes,
// sometimes empty ones, then err, along with the last bytes or alone.
type chunks struct {
	data     []byte
	rng      *rand.Rand
	max      int
	err      error
	errAlong bool
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, c.err
	}
	if c.rng.IntN(10) == 0 {
		return 0, nil
	}
	n := copy(p, c.data[:min(len(c.data), 1+c.rng.IntN(c.max))])
	c.data = c.data[n:]
	if len(c.data) == 0 && c.errAlong {
		return n, c.err
	}
	return n, nil
}

// naiveBlocks is what Blocks must give, the obvious way: the input without a
// leading BOM, cut after its last "\n" (the whole lines) and the rest.
func naiveBlocks(in string) (whole, tail string) {
	in = strings.TrimPrefix(in, "\xEF\xBB\xBF")
	i := strings.LastIndexByte(in, '\n')
	return in[:i+1], in[i+1:]
}

// TestBlocksAgainstNaive reads random inputs (short and long lines, BOMs,
// "\r\n") through random reads and buffer sizes: the blocks, joined, are
// the whole lines, each block ends in "\n", and Tail is the rest; with a
// failing reader, what came before the error is a prefix of that.
func TestBlocksAgainstNaive(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 3))
	pieces := []string{"a", "bc", "\n", "\r\n", "\r", " ", "\xEF\xBB\xBF", "\xEF", "\n\n"}
	blocks := lines.NewBlocks(nil, 1, 1)
	for round := range 3000 {
		var in strings.Builder
		if rng.IntN(3) == 0 {
			in.WriteString("\xEF\xBB\xBF"[:1+rng.IntN(3)])
		}
		for range rng.IntN(60) {
			in.WriteString(pieces[rng.IntN(len(pieces))])
			if rng.IntN(100) == 0 {
				in.WriteString(strings.Repeat("L", rng.IntN(5000)))
			}
		}
		fail := round%5 == 0
		src := &chunks{data: []byte(in.String()), rng: rng, max: 1 + rng.IntN(300), err: io.EOF, errAlong: rng.IntN(2) == 0}
		if fail {
			src.err = errors.New("boom")
		}
		size := 1 + rng.IntN(64)
		if round%2 == 0 {
			blocks = lines.NewBlocks(src, size, size*(1+rng.IntN(8)))
		} else {
			blocks.Reset(src) // a used buffer, of whatever size it grew to
		}
		var got bytes.Buffer
		var err error
		for {
			var b []byte
			if b, err = blocks.Next(); err != nil {
				break
			}
			if len(b) == 0 || b[len(b)-1] != '\n' {
				t.Fatalf("seed %d: input %q: block %q does not end in a newline", seed, in.String(), b)
			}
			got.Write(b)
		}
		whole, tail := naiveBlocks(in.String())
		switch {
		case fail && err != src.err:
			t.Fatalf("seed %d: input %q: error %v, want the reader's", seed, in.String(), err)
		case fail && !strings.HasPrefix(whole+tail, got.String()+string(blocks.Tail())):
			t.Fatalf("seed %d: input %q: before the error %q + %q, not a prefix", seed, in.String(), got.String(), blocks.Tail())
		case !fail && err != io.EOF:
			t.Fatalf("seed %d: input %q: error %v, want io.EOF", seed, in.String(), err)
		case !fail && (got.String() != whole || string(blocks.Tail()) != tail):
			t.Fatalf("seed %d: input %q: blocks %q, tail %q; want %q, %q", seed, in.String(), got.String(), blocks.Tail(), whole, tail)
		}
	}
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestBlocksNoProgress(t *testing.T) {
	if _, err := lines.NewBlocks(emptyReader{}, 16, 16).Next(); err != io.ErrNoProgress {
		t.Errorf("Next on a reader that never returns anything: %v, want io.ErrNoProgress", err)
	}
}

// Reads that fill the buffer double it up to max; a long line grows it past
// max.
func TestBlocksGrow(t *testing.T) {
	in := strings.Repeat("0123456\n", 64<<10)
	b := lines.NewBlocks(strings.NewReader(in), 1<<10, 16<<10)
	var sizes []int
	for {
		blk, err := b.Next()
		if err != nil {
			break
		}
		sizes = append(sizes, len(blk))
	}
	if first, most := sizes[0], slices.Max(sizes); first > 1<<10 || most != 16<<10 {
		t.Errorf("first block %d bytes, largest %d; want at most 1 KiB, then up to 16 KiB", first, most)
	}
	long := strings.Repeat("x", 100<<10) + "\n"
	b = lines.NewBlocks(strings.NewReader(long), 1<<10, 1<<10)
	if blk, err := b.Next(); err != nil || string(blk) != long {
		t.Errorf("a 100 KiB line through a 1 KiB buffer: %d bytes, %v", len(blk), err)
	}
}

func TestLastNewline(t *testing.T) {
	long := strings.Repeat("y", 200<<10)
	tests := []struct {
		in   string
		end  int64
		want int64
	}{
		{"", 0, -1},
		{"abc", 3, -1},
		{"a\nb", 3, 1},
		{"a\nb\n", 4, 3},
		{"a\nb\n", 3, 1},
		{"\n" + long, int64(1 + len(long)), 0},
		{"x\n" + long + "\n" + long, int64(3 + 2*len(long)), int64(2 + len(long))},
	}
	for _, tt := range tests {
		got, err := lines.LastNewline(strings.NewReader(tt.in), tt.end)
		if err != nil || got != tt.want {
			t.Errorf("LastNewline(%.20q, %d) = %d, %v; want %d", tt.in, tt.end, got, err, tt.want)
		}
	}
}
