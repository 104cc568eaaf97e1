package checkpoint_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ck-tools/ck/lib/checkpoint"
)

// BenchmarkSnapshot reads a checkpoint of a million URL-like lines the two
// ways ckskip does: Last (after mode: the last line backwards, then a count
// over the whole file) and Keys (--set: every key).
func BenchmarkSnapshot(b *testing.B) {
	path := filepath.Join(b.TempDir(), "check.txt")
	var data []byte
	for i := range 1_000_000 {
		data = fmt.Appendf(data, "https://www.example.com/datasets/part-%08d/file-%010d.jpg\n", i%977, i)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.Run("last", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			s, err := checkpoint.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			if last, err := s.Last(); err != nil || last.Count != 1 {
				b.Fatalf("Last: %+v, %v", last, err)
			}
			s.Close()
		}
	})
	b.Run("keys", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			s, err := checkpoint.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			if err := s.Keys(func(keys [][]byte) error { n += len(keys); return nil }); err != nil || n != 1_000_000 {
				b.Fatalf("Keys: %d keys, %v", n, err)
			}
			s.Close()
		}
	})
}
