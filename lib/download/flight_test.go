package download

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// waitEnded waits (bounded) for fl to be ended from outside and returns
// when it was seen so, and its cause.
func waitEnded(t *testing.T, fl *flight, limit time.Duration) (time.Time, error) {
	t.Helper()
	for start := time.Now(); time.Since(start) < limit; time.Sleep(time.Millisecond) {
		if err := fl.err(); err != nil {
			return time.Now(), err
		}
	}
	t.Fatalf("not ended within %v", limit)
	return time.Time{}, nil
}

// A hop that keeps receiving bytes is never ended; once they stop, it is
// ended as stalled, and never before d has passed since its last byte.
// Then the watch's goroutine ends: nothing is in flight.
func TestStallWatch(t *testing.T) {
	const d = 100 * time.Millisecond
	fs := newFlights(d)
	last := time.Now() // the watch starts after this
	fl := fs.start(context.Background())
	r := fl.reader(strings.NewReader(strings.Repeat("x", 12)))
	// A byte every d/3 for 4 d: progress all along. Were reads not
	// progress, it would be ended about d after the start, less than d
	// after its last byte. (A sleep that overran d on a loaded machine
	// makes an end right; the lower bound is checked either way.)
	for range 12 {
		time.Sleep(d / 3)
		if err := fl.err(); err != nil {
			if gap := time.Since(last); gap < d {
				t.Fatalf("ended (%v) %v after the last byte, while bytes came every d/3; want never before the stall timeout %v", err, gap, d)
			}
			fl.end()
			return
		}
		var b [1]byte
		before := time.Now() // the read records its time after this
		if n, _ := r.Read(b[:]); n != 1 {
			t.Fatal("short read")
		}
		last = before
	}
	at, err := waitEnded(t, fl, 100*d)
	if err != errStalled {
		t.Errorf("ended with %v; want errStalled", err)
	}
	if gap := at.Sub(last); gap < d {
		t.Errorf("ended %v after the last byte; want at least the stall timeout %v", gap, d)
	}
	fl.end()
	for start := time.Now(); ; time.Sleep(d / 10) {
		fs.mu.Lock()
		running := fs.watching
		fs.mu.Unlock()
		if !running {
			break
		}
		if time.Since(start) > 100*d {
			t.Fatal("the watch's goroutine still runs with nothing in flight")
		}
	}
}

// A hop that ended is no longer watched: it is never ended from outside.
func TestStallWatchEnd(t *testing.T) {
	const d = 20 * time.Millisecond
	fs := newFlights(d)
	fl := fs.start(context.Background())
	fl.end()
	keep := fs.start(context.Background()) // keeps the goroutine looking
	defer keep.end()
	time.Sleep(5 * d)
	if err := fl.err(); err != nil {
		t.Errorf("a hop that ended was ended from outside: %v", err)
	}
}

// No stall timeout: nothing is watched, reads are not wrapped.
func TestStallWatchOff(t *testing.T) {
	fs := newFlights(0)
	fl := fs.start(context.Background())
	defer fl.end()
	if fl.watched() {
		t.Fatal("watched() without a stall timeout")
	}
	r := strings.NewReader("x")
	if fl.reader(r) != r {
		t.Error("the reader is wrapped without a stall timeout")
	}
	time.Sleep(20 * time.Millisecond)
	if fs.watching || fl.err() != nil {
		t.Errorf("without a stall timeout: watch running %v, hop ended %v", fs.watching, fl.err())
	}
}

// A context's end ends every hop of it in flight, with its cause, and no
// other; one context.AfterFunc serves all of them, and goes with the last
// one (a context of hops that all ended is not held).
func TestFlightsContextEnd(t *testing.T) {
	fs := newFlights(0)
	why := errors.New("interrupted")
	ctx, cancel := context.WithCancelCause(context.Background())
	type key struct{}
	a, b := fs.start(ctx), fs.start(context.WithValue(ctx, key{}, 1)) // one Done channel
	other := fs.start(context.Background())
	defer other.end()
	if len(fs.ctxs) != 1 || fs.ctxs[ctx.Done()].n != 2 {
		t.Fatalf("%d context watches; want one, for both hops of ctx", len(fs.ctxs))
	}
	lone, stop := context.WithCancel(context.Background())
	c := fs.start(lone)
	c.end()
	if _, held := fs.ctxs[lone.Done()]; held {
		t.Error("a context whose hops all ended is still watched")
	}
	stop()
	cancel(why)
	for _, fl := range []*flight{a, b} {
		if _, err := waitEnded(t, fl, 10*time.Second); err != why {
			t.Errorf("ended with %v; want the context's cause %v", err, why)
		}
		fl.end()
	}
	if err := c.err(); err != nil {
		t.Errorf("a hop that ended before its context did was ended: %v", err)
	}
	if err := other.err(); err != nil {
		t.Errorf("a hop of another context was ended: %v", err)
	}
	if len(fs.ctxs) != 0 {
		t.Errorf("%d context watches after every hop of them ended; want none", len(fs.ctxs))
	}
}

// A hop started with a context already done is ended at once, and the
// context made for it (a dial, another Transport) is done with its cause.
func TestFlightStartedDone(t *testing.T) {
	fs := newFlights(0)
	ctx, cancel := context.WithCancel(context.Background())
	keep := fs.start(ctx) // its context watch is there already
	cancel()
	keep.end()
	fl := fs.start(ctx)
	defer fl.end()
	if err := fl.err(); err != context.Canceled {
		t.Fatalf("started with a done context: err %v; want context.Canceled", err)
	}
	if made := fl.context(); made.Err() == nil {
		t.Error("the context made for an ended hop is not done")
	}
	fresh := fs.start(context.Background())
	made := fresh.context()
	fresh.fire(errStalled)
	if context.Cause(made) != errStalled {
		t.Errorf("made context's cause %v after a stall; want errStalled", context.Cause(made))
	}
	fresh.end()
}
