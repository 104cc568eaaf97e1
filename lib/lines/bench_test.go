package lines_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/ck-tools/ck/lib/lines"
)

// BenchmarkReader reads a million URL-like lines one at a time, as ckfetch
// reads its stdin.
func BenchmarkReader(b *testing.B) {
	var data []byte
	for i := range 1_000_000 {
		data = fmt.Appendf(data, "https://www.example.com/datasets/part-%08d/file-%010d.jpg\n", i%977, i)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r := lines.NewReader(bytes.NewReader(data))
		n := 0
		for {
			_, _, err := r.Next()
			if err == io.EOF {
				break
			}
			n++
		}
		if n != 1_000_000 {
			b.Fatalf("%d lines", n)
		}
	}
}
