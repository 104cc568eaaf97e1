package gcpace

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		floor, live uint64
		want        int
	}{
		{16 * mib, 4 * mib, 400},  // goal 20 MiB: live + floor
		{16 * mib, 8 * mib, 200},  // goal 24 MiB
		{16 * mib, 16 * mib, 100}, // goal 32 MiB: GOGC=100's
		{16 * mib, 64 * mib, 100}, // a large heap: never less than GOGC=100
		{16 * mib, 15 * mib, 106}, // rounded down: the goal never above live + floor
		{16 * mib, 1 * mib, 400},  // least goal 16 MiB (4 MiB at 100), not 1 + 16 MiB × 17
		{16 * mib, 0, 400},        // nothing measured: the same
		{0, 4 * mib, 100},         // no floor
		{1 << 50, 1 << 45, 3200},  // large values do not overflow
		{1 << 40, 1 << 30, maxPercent},
	} {
		if got := Percent(tc.floor, tc.live); got != tc.want {
			t.Errorf("Percent(%d, %d) = %d; want %d", tc.floor, tc.live, got, tc.want)
		}
	}
}

// read returns the runtime's GC percentage and heap goal.
func read() (percent, goal uint64) {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

// collectUntil runs collections (each followed by a short wait, for the
// finalizer goroutine) until ok holds, at most 500 times.
func collectUntil(t *testing.T, what string, ok func(percent, goal uint64) bool) {
	t.Helper()
	var p, g uint64
	for range 500 {
		runtime.GC()
		time.Sleep(time.Millisecond)
		if p, g = read(); ok(p, g) {
			return
		}
	}
	t.Fatalf("after 500 collections: GOGC %d, heap goal %d MiB; want %s", p, g>>20, what)
}

// TestHeadroom: with a small live heap the goal is at least the floor;
// with a live heap larger than the floor GOGC is 100; stop restores 100
// for good.
func TestHeadroom(t *testing.T) {
	const floor = 64 << 20
	stop := Headroom(floor)
	defer stop()
	collectUntil(t, "a goal of at least the 64 MiB floor over a small heap", func(p, g uint64) bool { return p > 100 && g >= floor })
	// and not much more: the live heap plus the floor (the percentage is
	// rounded down, and set from the live heap of the collection before).
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	if live, goal := s[0].Value.Uint64(), s[1].Value.Uint64(); goal > floor+2*live+1<<20 {
		t.Errorf("heap goal %d MiB over %d MiB live; want about the live heap + the %d MiB floor", goal>>20, live>>20, floor>>20)
	}

	held := make([]byte, 2*floor)
	collectUntil(t, "GOGC 100 with 128 MiB live", func(p, g uint64) bool { return p == 100 && g >= 2*floor*2 })
	runtime.KeepAlive(held)
	held = nil

	collectUntil(t, "the floor again once the heap is small", func(p, g uint64) bool { return p > 100 })
	stop()
	if p, _ := read(); p != 100 {
		t.Fatalf("GOGC %d after stop; want 100", p)
	}
	for range 5 {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if p, _ := read(); p != 100 {
		t.Fatalf("GOGC %d after stop and more collections; want 100 (the finalizer still sets it)", p)
	}
}

// TestHeadroomGOGC: GOGC in the environment is the user's choice.
func TestHeadroomGOGC(t *testing.T) {
	t.Setenv("GOGC", "100")
	stop := Headroom(64 << 20)
	defer stop()
	for range 5 {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if p, _ := read(); p != 100 {
		t.Fatalf("GOGC %d with GOGC=100 in the environment; want 100", p)
	}
}
