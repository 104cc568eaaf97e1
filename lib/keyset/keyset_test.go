package keyset_test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/ck-tools/ck/lib/keyset"
)

func key(i int) []byte {
	return fmt.Appendf(nil, "https://www.example.com/images/part-%05d/file-%010d.jpg", i%977, i)
}

func TestNoFalseNegatives(t *testing.T) {
	tests := []struct {
		name  string
		sized int // New(sized); -1 for the zero Set
		n     int
		each  bool // AddEach and HasEach instead of Add and Has
	}{
		{"zero value grows", -1, 10000, false},
		{"sized exactly", 50000, 50000, false},
		{"undersized grows", 100, 50000, false},
		{"oversized", 100000, 1000, false},
		{"empty", 10, 0, false},
		{"each zero value grows", -1, 10000, true},
		{"each sized exactly", 50000, 50000, true},
		{"each undersized grows", 100, 50000, true},
		{"each empty", 10, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &keyset.Set{}
			if tt.sized >= 0 {
				s = keyset.New(tt.sized)
			}
			defer s.Release()
			var added, absent [][]byte
			for i := 0; i < tt.n; i++ {
				added = append(added, key(i))
			}
			for i := tt.n; i < tt.n+10000; i++ {
				absent = append(absent, key(i))
			}
			has := func(keys [][]byte) []bool {
				found := make([]bool, len(keys))
				if tt.each {
					s.HasEach(keys, found)
					return found
				}
				for i, k := range keys {
					found[i] = s.Has(k)
				}
				return found
			}
			if tt.each {
				for i := 0; i < len(added); i += 1000 { // in parts, so the set grows between them
					s.AddEach(added[i:min(i+1000, len(added))])
				}
			} else {
				for _, k := range added {
					s.Add(k)
				}
			}
			if s.Len() != tt.n {
				t.Errorf("Len() = %d, want %d", s.Len(), tt.n)
			}
			for i, ok := range has(added) {
				if !ok {
					t.Fatalf("Has(%q) = false after Add", added[i])
				}
			}
			for i, ok := range has(absent) {
				if ok {
					t.Fatalf("Has(%q) = true, never added", absent[i])
				}
			}
		})
	}
}

func TestDuplicatesAndOddKeys(t *testing.T) {
	s := keyset.New(4)
	odd := [][]byte{{}, {0}, {0xff, 0xfe}, []byte("a\r"), []byte("a"), make([]byte, 1<<20)}
	for range 3 {
		for _, k := range odd {
			s.Add(k)
		}
	}
	if s.Len() != len(odd) {
		t.Errorf("Len() = %d after adding %d keys three times, want %d", s.Len(), len(odd), len(odd))
	}
	for _, k := range odd {
		if !s.Has(k) {
			t.Errorf("Has(%q) = false", k[:min(len(k), 8)])
		}
	}
	if s.Has([]byte("b")) {
		t.Errorf(`Has("b") = true, never added`)
	}
}

// TestBytesPerKey checks the contract's bound of 32 bytes of memory per key:
// the table's own size, the growth of the Go heap, and where the system
// reports it, the growth of the process's resident memory.
func TestBytesPerKey(t *testing.T) {
	const n = 1 << 20
	keys := make([][]byte, 0, n)
	for i := range n {
		keys = append(keys, strconv.AppendInt(nil, int64(i), 36))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rss0, rssOK := rss()
	s := keyset.New(n)
	s.AddEach(keys)
	rss1, _ := rss()
	runtime.ReadMemStats(&after)
	defer s.Release()

	if s.Len() != n {
		t.Fatalf("Len() = %d, want %d", s.Len(), n)
	}
	table := float64(s.Bytes()) / n
	heap := float64(after.TotalAlloc-before.TotalAlloc) / n
	if table > 32 {
		t.Errorf("table: %.1f bytes per key, want at most 32", table)
	}
	if heap > 32 {
		t.Errorf("Go heap grew by %.1f bytes per key, want at most 32", heap)
	}
	if rssOK {
		const slack = 4 << 20 // the runtime's own growth, rounding to huge pages
		if got := float64(rss1 - rss0 - slack); got > 32*n {
			t.Errorf("resident memory grew by %.1f bytes per key (%d slack), want at most 32", got/n, slack)
		}
		t.Logf("resident memory grew by %.1f bytes per key", float64(rss1-rss0)/n)
	}
	t.Logf("table %.1f bytes per key, Go heap %.1f", table, heap)
}

// rss returns the resident memory of the process, from /proc on Linux.
func rss() (int64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize()), err == nil
}

func TestRelease(t *testing.T) {
	for _, n := range []int{10, 1 << 20} { // on the heap, and mapped
		s := keyset.New(n)
		s.Add([]byte("a"))
		s.Release()
		if s.Has([]byte("a")) || s.Len() != 0 {
			t.Errorf("n=%d: set not empty after Release", n)
		}
		s.Add([]byte("b")) // usable again
		if !s.Has([]byte("b")) {
			t.Errorf("n=%d: Has after Release and Add = false", n)
		}
		s.Release()
	}
}

func BenchmarkKeysetInsert(b *testing.B) {
	const n = 1 << 20
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = key(i)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(keys[0])))
	var s *keyset.Set
	for i := 0; i < b.N; i++ {
		if i%n == 0 {
			if s != nil {
				s.Release()
			}
			s = keyset.New(n)
		}
		s.Add(keys[i%n])
	}
}

func BenchmarkKeysetLookup(b *testing.B) {
	const n = 5_000_000 // a table far larger than the CPU caches
	s := keyset.New(n)
	defer s.Release()
	for i := range n {
		s.Add(key(i))
	}
	probe := make([][]byte, 1<<16)
	for i := range probe {
		probe[i] = key(i * 151) // half present, half absent
	}
	b.SetBytes(int64(len(probe[0])))
	b.ResetTimer()
	found := 0
	for i := 0; i < b.N; i++ {
		if s.Has(probe[i%len(probe)]) {
			found++
		}
	}
	if b.N >= len(probe) && found == 0 {
		b.Fatal("no key found")
	}
}

func BenchmarkKeysetLookupEach(b *testing.B) {
	const n = 5_000_000
	s := keyset.New(n)
	defer s.Release()
	for i := range n {
		s.Add(key(i))
	}
	probe := make([][]byte, 1<<16)
	for i := range probe {
		probe[i] = key(i * 151)
	}
	found := make([]bool, 256)
	b.SetBytes(int64(len(probe[0])))
	b.ResetTimer()
	for i := 0; i < b.N; i += 256 {
		j := i % len(probe)
		s.HasEach(probe[j:j+256], found)
	}
}

func BenchmarkKeysetInsertEach(b *testing.B) {
	const n = 1 << 20
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = key(i)
	}
	b.SetBytes(int64(len(keys[0])))
	b.ReportAllocs()
	var s *keyset.Set
	for i := 0; i < b.N; i += 256 {
		j := i % n
		if j == 0 {
			if s != nil {
				s.Release()
			}
			s = keyset.New(n)
		}
		s.AddEach(keys[j : j+256])
	}
}
