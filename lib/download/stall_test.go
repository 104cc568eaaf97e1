package download

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// An attempt that keeps receiving bytes is never failed; once they stop,
// it is failed as stalled, and never before d has passed since its last
// byte. Then the watch's goroutine ends: nothing is watched.
func TestStallWatch(t *testing.T) {
	const d = 100 * time.Millisecond
	w := newStallWatch(d)
	fired := make(chan time.Time, 1)
	last := time.Now() // the watch starts after this
	s := newStallTimer(w, func(cause error) {
		if cause != errStalled {
			t.Errorf("cancelled with %v; want errStalled", cause)
		}
		fired <- time.Now()
	})
	r := s.reader(strings.NewReader(strings.Repeat("x", 12)))
	// A byte every d/3 for 4 d: progress all along. Were reads not
	// progress, it would be failed about d after the start, less than d
	// after its last byte. (A sleep that overran d on a loaded machine
	// makes a failure right; the lower bound is checked either way.)
	for range 12 {
		time.Sleep(d / 3)
		select {
		case at := <-fired:
			if gap := at.Sub(last); gap < d {
				t.Fatalf("failed %v after the last byte, while bytes came every d/3; want never before the stall timeout %v", gap, d)
			}
			return
		default:
		}
		var b [1]byte
		before := time.Now() // the read records its time after this
		if n, _ := r.Read(b[:]); n != 1 {
			t.Fatal("short read")
		}
		last = before
	}
	select {
	case at := <-fired:
		if gap := at.Sub(last); gap < d {
			t.Errorf("failed %v after the last byte; want at least the stall timeout %v", gap, d)
		}
	case <-time.After(100 * d):
		t.Fatal("never failed as stalled")
	}
	for start := time.Now(); ; time.Sleep(d / 10) {
		w.mu.Lock()
		running := w.running
		w.mu.Unlock()
		if !running {
			break
		}
		if time.Since(start) > 100*d {
			t.Fatal("the watch's goroutine still runs with nothing watched")
		}
	}
}

// A stopped attempt is no longer watched: it is never failed.
func TestStallWatchStop(t *testing.T) {
	const d = 20 * time.Millisecond
	w := newStallWatch(d)
	var fired atomic.Bool
	s := newStallTimer(w, func(error) { fired.Store(true) })
	s.stop()
	keep := newStallTimer(w, func(error) {}) // keeps the goroutine looking
	defer keep.stop()
	time.Sleep(5 * d)
	if fired.Load() {
		t.Error("a stopped attempt was failed as stalled")
	}
}

// No stall timeout: nothing is watched, reads are not wrapped.
func TestStallWatchOff(t *testing.T) {
	s := newStallTimer(nil, func(error) { t.Error("cancelled without a stall timeout") })
	if !s.off() {
		t.Fatal("off() = false without a watch")
	}
	r := strings.NewReader("x")
	if s.reader(r) != r {
		t.Error("the reader is wrapped without a stall timeout")
	}
	s.stop()
}
