package fetch_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ck-tools/ck/lib/fetch"
)

func TestByteRate(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1000": 1000, "500k": 500 << 10, "500K": 500 << 10, "1.5M": 3 << 19, "2g": 2 << 30, " 10k ": 10 << 10, "0.5k": 512,
	} {
		var r fetch.ByteRate
		if err := r.UnmarshalText([]byte(in)); err != nil || int64(r) != want {
			t.Errorf("ByteRate(%q) = %d, %v; want %d", in, r, err, want)
		}
	}
	for _, in := range []string{"", "k", "-1", "1x", "1kk", "NaN", "Inf", "0.5", "1e30G"} {
		var r fetch.ByteRate
		if err := r.UnmarshalText([]byte(in)); err == nil {
			t.Errorf("ByteRate(%q) = %d; want an error", in, r)
		}
	}
}

func TestLimitRateUsage(t *testing.T) {
	code, _, stderr := runMain(t, context.Background(), strings.NewReader(""), "-d", t.TempDir(), "--limit-rate", "fast")
	if code != 2 || !strings.Contains(stderr, `--limit-rate: "fast" is not a rate`) {
		t.Errorf("--limit-rate fast: status %d, stderr %q; want 2 and a message", code, stderr)
	}
}
