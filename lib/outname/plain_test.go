package outname

import (
	"math/rand/v2"
	"testing"
)

// What plainName lets through, escapeText and escapeBytes give back as it
// is: every single byte, and random strings of the bytes near its edges.
func TestPlainName(t *testing.T) {
	check := func(s string) {
		if !plainName(s) {
			return
		}
		if got := escapeBytes(s, nil); got != s {
			t.Fatalf("escapeBytes(%q) = %q, but plainName lets it through as it is", s, got)
		}
		// escapeText's own path, without the shortcut: decode, then escape.
		vals, kinds := []byte(s), make([]byte, len(s))
		for i := range vals {
			if isReserved(vals[i]) {
				kinds[i] = reserved
			}
		}
		if got := escapeBytes(string(vals), kinds); got != s {
			t.Fatalf("escapeText(%q) would be %q, but plainName lets it through as it is", s, got)
		}
	}
	for c := range 256 {
		check(string(rune(c)))
		check(string([]byte{byte(c)}))
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	edges := []byte(" !\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~\x7f\x00\x1f\x80\xff")
	for range 20000 {
		b := make([]byte, rnd.IntN(12))
		for i := range b {
			b[i] = edges[rnd.IntN(len(edges))]
		}
		check(string(b))
	}
	for _, s := range []string{"a%20b", "a/b", "caf\xc3\xa9", "x\x7f"} {
		if plainName(s) {
			t.Errorf("plainName(%q) = true; it needs escaping or decoding", s)
		}
	}
}
