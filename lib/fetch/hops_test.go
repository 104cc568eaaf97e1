package fetch_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFetchHopWaitsWithoutSlot: a redirect hop whose target host is at its
// --per-host limit waits for it without holding a -j slot, so a line of a
// third host goes on meanwhile; and the target never has more requests at
// once than --per-host.
func TestFetchHopWaitsWithoutSlot(t *testing.T) {
	cServed := make(chan struct{})
	var cOnce sync.Once
	var active, maxActive atomic.Int32
	var releasedByC atomic.Bool
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := active.Add(1)
		defer active.Add(-1)
		for m := maxActive.Load(); n > m && !maxActive.CompareAndSwap(m, n); m = maxActive.Load() {
		}
		if r.URL.Path == "/busy" {
			// Busy until host C was served (at most 10 s, so that a
			// scheduler that keeps the hop's slot fails instead of hanging).
			select {
			case <-cServed:
				releasedByC.Store(true)
			case <-time.After(10 * time.Second):
			}
		}
		io.WriteString(w, "b\n")
	}))
	defer b.Close()
	a := httptest.NewServer(http.RedirectHandler(b.URL+"/hop", http.StatusFound))
	defer a.Close()
	c := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cOnce.Do(func() { close(cServed) })
		io.WriteString(w, "c\n")
	}))
	defer c.Close()

	// Line 1 holds B; line 2's hop to B waits for it; line 3 (host C) takes
	// the slot line 2 gave back. With one slot per line kept through the
	// hop, line 3 would wait for B's busy request, which waits for C.
	input := b.URL + "/busy\n" + a.URL + "/short\n" + c.URL + "/c\n"
	s := startMain(context.Background(), input, "-q", "-j", "2", "--per-host", "1", "-d", t.TempDir())
	if code := s.wait(); code != 0 || s.stdout.String() != input {
		t.Fatalf("exit %d, echoed %q; want 0 and every line\nstderr:\n%s", code, s.stdout, s.stderr)
	}
	if !releasedByC.Load() {
		t.Errorf("host C was not served while B was busy: the hop waiting for B kept its -j slot")
	}
	if m := maxActive.Load(); m != 1 {
		t.Errorf("B had %d requests at once; want 1 (--per-host 1, the hop included)", m)
	}
}
