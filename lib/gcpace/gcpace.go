// Package gcpace sets how often Go's garbage collector runs in a ck tool
// whose live heap is small but whose allocations are many, as ckfetch's on
// small files: a few MiB live (the window, the connections), a few KiB
// allocated and dropped per file. At GOGC=100 the collector ran 13 times
// over 20,000 files of 4 KiB; with 16 MiB of headroom it runs 4 times, and
// ckfetch's CPU was 6% less (scripts/bench.sh's small files, by hand).
//
// Headroom lets the heap grow by at least a given number of bytes between
// collections, and by GOGC's 100% of the live heap when that is more: the
// heap goal is about live + max(live, floor). So a small heap costs at most
// floor of memory more, and a large one what GOGC=100 costs. It is the
// technique of the Go compiler's AdjustStartingHeap (cmd/compile/internal/
// base/startheap.go): a finalizer that runs after each collection reads the
// live heap (runtime/metrics) and sets the GC percentage for the next one.
// GOGC in the environment is the user's choice and is kept as it is; a
// GOMEMLIMIT still bounds the heap, as the runtime always does.
package gcpace

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// heapMinimum is the runtime's least heap goal at GOGC=100 (its
// defaultHeapMinimum, 4 MiB); it scales with the GC percentage, so a
// percentage made for a live heap smaller than this would set a least goal
// above live + floor.
const heapMinimum = 4 << 20

// maxPercent bounds the percentage Headroom sets (a floor of 400 MiB).
const maxPercent = 10000

// active is set while a Headroom is in force: the GC percentage is the
// process's, so there is one at a time.
var active atomic.Bool

// Headroom makes the collector run when the heap has grown by floor bytes
// since the last collection, or by the live heap if that is more, until
// stop is called (which restores GOGC=100). It does nothing, and stop
// nothing, when GOGC is set (not empty) in the environment, or while an
// earlier Headroom is in force: a process that runs a tool's Main twice
// keeps the first.
func Headroom(floor uint64) (stop func()) {
	if os.Getenv("GOGC") != "" || floor == 0 || !active.CompareAndSwap(false, true) { // GOGC= is the runtime's default, as unset
		return func() {}
	}
	var (
		mu      sync.Mutex // a percentage set after each collection never follows stop's
		stopped bool
	)
	debug.SetGCPercent(Percent(floor, 0))
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	forEachGC(func() bool {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return false
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			debug.SetGCPercent(Percent(floor, sample[0].Value.Uint64()))
		}
		return true
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			stopped = true
			debug.SetGCPercent(100)
			active.Store(false)
		}
	}
}

// Percent is the GC percentage that makes the heap goal after a collection
// that found live bytes live about live + max(live, floor): 100, or more
// for a live heap smaller than floor. For a live heap under the runtime's
// heapMinimum (or none measured yet), it is the percentage whose least goal
// is floor: the goal is then floor, or live + live × floor ÷ heapMinimum if
// that is more, never more than live + floor.
func Percent(floor, live uint64) int {
	live = max(live, heapMinimum)
	if floor <= live {
		return 100
	}
	return int(min(maxPercent, max(100, floor*100/live)))
}

// forEachGC calls fn after each collection, from the finalizer goroutine,
// until it returns false.
func forEachGC(fn func() bool) {
	type sentinel [32]byte // larger than the tiny allocator's 16 bytes: a finalizer needs an object of its own
	var finalizer func(*sentinel)
	finalizer = func(p *sentinel) {
		if fn() {
			runtime.SetFinalizer(p, finalizer)
		}
	}
	runtime.SetFinalizer(new(sentinel), finalizer)
}
