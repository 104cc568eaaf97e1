package download

// The stall timeout: an attempt that receives no byte for a while fails.

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

var errStalled = errors.New("stalled: no data received within the stall timeout")

// stallWatch fails the attempts of a Fetcher that receive no byte for d. One
// goroutine, running while attempts are watched, looks at them a few times
// per d (every tick), instead of a runtime timer per attempt that every read
// resets: on small files those timers cost a few per cent of ckfetch's CPU.
// A read that brings bytes records when it did (a monotonic clock read);
// an attempt is failed at the first look that finds its last byte (or its
// start) at least d old: never before d, at most a tick or so after.
type stallWatch struct {
	d, tick time.Duration
	base    time.Time // the clock's zero: times are time.Since(base), monotonic

	mu      sync.Mutex
	watched map[*stallTimer]struct{}
	running bool
}

func newStallWatch(d time.Duration) *stallWatch {
	return &stallWatch{d: d, tick: min(max(d/8, 5*time.Millisecond), time.Second), base: time.Now(),
		watched: map[*stallTimer]struct{}{}}
}

func (w *stallWatch) clock() int64 { return int64(time.Since(w.base)) }

// stallTimer is one attempt's place in a stallWatch; a nil watch: no stall
// timeout.
type stallTimer struct {
	w      *stallWatch
	last   atomic.Int64            // when the last byte came (or the attempt began), by w.clock
	cancel context.CancelCauseFunc // of the attempt
}

// stallBound is the key of a context value that says the request's
// attempt is watched for stalls from its start: its wait for the response
// headers is bounded, so the lean client sets no read deadline of its own
// for it (two runtime timer changes per request saved).
type stallBound struct{}

// newStallTimer starts watching an attempt that cancel ends, from now.
func newStallTimer(w *stallWatch, cancel context.CancelCauseFunc) *stallTimer {
	s := &stallTimer{w: w, cancel: cancel}
	if w == nil {
		return s
	}
	s.last.Store(w.clock())
	w.mu.Lock()
	w.watched[s] = struct{}{}
	if !w.running {
		w.running = true
		go w.loop()
	}
	w.mu.Unlock()
	return s
}

// fire fails the attempt as stalled.
func (s *stallTimer) fire() { s.cancel(errStalled) }

// off reports whether no stall timeout watches the attempt.
func (s *stallTimer) off() bool { return s.w == nil }

// stop ends the watch of the attempt.
func (s *stallTimer) stop() {
	if s.w == nil {
		return
	}
	s.w.mu.Lock()
	delete(s.w.watched, s)
	s.w.mu.Unlock()
}

// reader returns r, recording each read that brings bytes as progress.
func (s *stallTimer) reader(r io.Reader) io.Reader {
	if s.w == nil {
		return r
	}
	return readerFunc(func(p []byte) (int, error) {
		n, err := r.Read(p)
		if n > 0 {
			s.last.Store(s.w.clock())
		}
		return n, err
	})
}

// loop fails the stalled attempts, every tick, until none is watched.
func (w *stallWatch) loop() {
	var stalled []*stallTimer
	for {
		time.Sleep(w.tick)
		now := w.clock()
		stalled = stalled[:0]
		w.mu.Lock()
		for s := range w.watched {
			if time.Duration(now-s.last.Load()) >= w.d {
				delete(w.watched, s)
				stalled = append(stalled, s)
			}
		}
		idle := len(w.watched) == 0
		if idle {
			w.running = false
		}
		w.mu.Unlock()
		for _, s := range stalled {
			s.fire()
		}
		if idle {
			return
		}
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
