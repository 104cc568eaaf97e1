package skip_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/ck-tools/ck/lib/lines"
	"github.com/ck-tools/ck/lib/skip"
)

// benchList returns n URL-like lines of about 74 bytes each.
func benchList(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "https://www.example.com/datasets/images/part-%08d/file-%010d.jpg\n", i%977, i*7919%1000000007)
	}
	return b.Bytes()
}

func nthLine(list []byte, i int) []byte {
	for ; i > 0; i-- {
		list = list[bytes.IndexByte(list, '\n')+1:]
	}
	return list[:bytes.IndexByte(list, '\n')+1]
}

// benchRun runs ckskip on list (as stdin) with the checkpoint ck, output
// discarded, b.N times, and reports the input's throughput.
func benchRun(b *testing.B, list, ck []byte, args ...string) {
	b.Helper()
	dir := b.TempDir()
	name := filepath.Join(dir, "ck.txt")
	if err := os.WriteFile(name, ck, 0o644); err != nil {
		b.Fatal(err)
	}
	args = append(args, "-c", name)
	b.SetBytes(int64(len(list)))
	b.ReportAllocs()
	for b.Loop() {
		var stderr bytes.Buffer
		if code := skip.Main(context.Background(), args, bytes.NewReader(list), io.Discard, &stderr); code != 0 {
			b.Fatalf("status %d: %s", code, stderr.String())
		}
	}
}

// BenchmarkAfter: after mode, the resume point near the start (print nearly
// everything: the fast path) and at the end (search every line's key).
func BenchmarkAfter(b *testing.B) {
	const n = 1_000_000
	list := benchList(n)
	b.Run("print", func(b *testing.B) { benchRun(b, list, nthLine(list, 10)) })
	b.Run("seek", func(b *testing.B) { benchRun(b, list, nthLine(list, n-1)) })
	b.Run("print-shard", func(b *testing.B) { benchRun(b, list, nil, "--shard", "0/1") })
}

// BenchmarkSet: --set with half the list's keys in the checkpoint; the time
// includes reading the checkpoint.
func BenchmarkSet(b *testing.B) {
	const n = 1_000_000
	list := benchList(n)
	var ck []byte
	for l := list; len(l) > 0; {
		i := bytes.IndexByte(l, '\n')
		if len(ck)%3 == 0 {
			ck = append(ck, l[:i+1]...)
		}
		l = l[i+1:]
	}
	benchRun(b, list, ck, "--set")
}

// BenchmarkKey: the per-line floor, finding each line and its key.
func BenchmarkKey(b *testing.B) {
	list := benchList(100_000)
	b.SetBytes(int64(len(list)))
	total := 0
	for b.Loop() {
		for l := list; len(l) > 0; {
			i := bytes.IndexByte(l, '\n')
			total += len(lines.Key(lines.TrimEnding(l[:i+1])))
			l = l[i+1:]
		}
	}
	if total == 0 {
		b.Fatal("no keys")
	}
}
