package outname_test

import (
	"testing"

	"github.com/ck-tools/ck/lib/outname"
)

// The cost of a name, per layout, for a typical URL and a percent-encoded
// one: a rerun of a long list computes one per line (and the owner check
// up to four).
func BenchmarkName(b *testing.B) {
	for _, bc := range []struct{ name, url string }{
		{"plain", "https://example.org/data/2024/part-0001.csv?v=2&lang=en"},
		{"encoded", "https://example.org/with%20space/%C3%BCber/caf%C3%A9%2Fx.bin?q=a%2Fb"},
	} {
		for _, l := range []outname.Layout{outname.Tree, outname.Flat} {
			b.Run(string(l)+"/"+bc.name, func(b *testing.B) {
				for b.Loop() {
					if _, err := l.Name(bc.url); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
