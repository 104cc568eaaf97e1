package download

// The hops in flight of a Fetcher, and how one is ended from outside: its
// context done, the stall timeout, the drain timeout.

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

var errStalled = errors.New("stalled: no data received within the stall timeout")

// flights is the set of the hops in flight of a Fetcher (or of the requests
// a Pool sends for others), and what ends them from outside, without a
// context or a timer of their own per hop: on small files the contexts of
// each request (one derived per hop, which registers with the run's
// context under its lock, and one context.AfterFunc per request) and a
// stall timer reset by every read were the largest group of ckfetch's own
// costs, about a tenth of its CPU.
//
//   - A context's end: one context.AfterFunc per context (by its Done
//     channel) while any hop of it is in flight ends them all, with the
//     context's cause.
//   - The stall timeout: one goroutine, running while hops are in flight,
//     looks at them every tick (stall/8, at most a second) and ends those
//     whose last byte (or start) is at least stall old: never before the
//     stall timeout, at most a tick or so after. A read that brings bytes
//     records when it did (a monotonic clock reading).
//
// A hop is ended through the connection the lean client sends it on (a read
// deadline in the past, see flight.attach), or through a context made for it
// where that is the only way (a dial, net/http's Transport: flight.context).
type flights struct {
	stall, tick time.Duration // the stall timeout (0: none), and how often it is looked at
	base        time.Time     // the clock's zero: times are time.Since(base), monotonic

	mu       sync.Mutex
	live     map[*flight]struct{}
	ctxs     map[<-chan struct{}]*ctxWatch // of the hops in flight, by Done channel
	watching bool                          // the stall watch's goroutine runs
}

// ctxWatch ends the hops in flight of one context when it is done.
type ctxWatch struct {
	n    int         // hops of it in flight
	stop func() bool // of its context.AfterFunc
}

func newFlights(stall time.Duration) *flights {
	return &flights{stall: stall, tick: min(max(stall/8, 5*time.Millisecond), time.Second), base: time.Now(),
		live: map[*flight]struct{}{}, ctxs: map[<-chan struct{}]*ctxWatch{}}
}

func (fs *flights) clock() int64 { return int64(time.Since(fs.base)) }

// flight is one hop in flight: a request and the read of its answer.
type flight struct {
	fs   *flights
	ctx  context.Context // the caller's: its end ends the hop
	done <-chan struct{} // ctx's; nil if it never ends
	last atomic.Int64    // when its last byte came (or it began), by fs.clock

	mu     sync.Mutex
	cause  error                   // why it was ended from outside; nil: it was not
	conn   *h1Conn                 // the lean client's connection it uses now
	made   context.Context         // made for it by context, nil if none
	cancel context.CancelCauseFunc // of made
}

// start puts a hop of ctx in flight, watched for stalls from now.
func (fs *flights) start(ctx context.Context) *flight {
	fl := &flight{fs: fs, ctx: ctx, done: ctx.Done()}
	fl.last.Store(fs.clock())
	fs.mu.Lock()
	fs.live[fl] = struct{}{}
	if fl.done != nil {
		w := fs.ctxs[fl.done]
		if w == nil {
			done := fl.done
			w = &ctxWatch{stop: context.AfterFunc(ctx, func() { fs.ended(done) })}
			fs.ctxs[done] = w
		}
		w.n++
	}
	if fs.stall > 0 && !fs.watching {
		fs.watching = true
		go fs.watch()
	}
	fs.mu.Unlock()
	// A context that ended before: its AfterFunc may have looked at the
	// hops in flight before this one was among them.
	if ctx.Err() != nil {
		fl.fire(context.Cause(ctx))
	}
	return fl
}

// ended ends the hops in flight of the context whose Done channel is done.
func (fs *flights) ended(done <-chan struct{}) {
	var end []*flight
	fs.mu.Lock()
	for fl := range fs.live {
		if fl.done == done {
			end = append(end, fl)
		}
	}
	fs.mu.Unlock()
	for _, fl := range end {
		fl.fire(context.Cause(fl.ctx))
	}
}

// end takes the hop out of flight, once its answer is read or given up.
func (fl *flight) end() {
	fs := fl.fs
	var stop func() bool
	fs.mu.Lock()
	delete(fs.live, fl)
	if fl.done != nil {
		w := fs.ctxs[fl.done]
		if w.n--; w.n == 0 {
			delete(fs.ctxs, fl.done)
			stop = w.stop
		}
	}
	fs.mu.Unlock()
	if stop != nil {
		stop()
	}
	fl.mu.Lock()
	cancel := fl.cancel
	fl.cancel = nil
	fl.mu.Unlock()
	if cancel != nil {
		cancel(nil)
	}
}

// fire ends the hop from outside, for cause (context.Canceled if nil);
// only the first cause counts.
func (fl *flight) fire(cause error) {
	if cause == nil {
		cause = context.Canceled
	}
	fl.mu.Lock()
	if fl.cause != nil {
		fl.mu.Unlock()
		return
	}
	fl.cause = cause
	c, cancel := fl.conn, fl.cancel
	fl.mu.Unlock()
	if c != nil {
		c.abort()
	}
	if cancel != nil {
		cancel(cause)
	}
}

// err is why the hop was ended from outside, nil if it was not.
func (fl *flight) err() error {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.cause
}

// watched reports whether a stall timeout watches the hop from its start:
// it bounds the wait for the answer's headers too.
func (fl *flight) watched() bool { return fl.fs.stall > 0 }

// attach tells the hop the lean client's connection it is sent on, which
// its end from outside aborts (h1Conn.abort); the hop's cause if it has
// already ended.
func (fl *flight) attach(c *h1Conn) error {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.cause != nil {
		return fl.cause
	}
	fl.conn = c
	return nil
}

// detach tells the hop its connection is done with, and reports whether
// the hop was ended from outside meanwhile (the connection's deadline may
// then be in the past: it is not to be used again).
func (fl *flight) detach() (ended bool) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.conn = nil
	return fl.cause != nil
}

// context returns a context that ends with the hop, for what only a
// context can end (a dial, net/http's Transport): made at the first call,
// released by end.
func (fl *flight) context() context.Context {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.made == nil {
		fl.made, fl.cancel = context.WithCancelCause(fl.ctx)
		if fl.cause != nil {
			fl.cancel(fl.cause)
		}
	}
	return fl.made
}

// reader returns r, recording each read that brings bytes as progress.
func (fl *flight) reader(r io.Reader) io.Reader {
	if !fl.watched() {
		return r
	}
	return readerFunc(func(p []byte) (int, error) {
		n, err := r.Read(p)
		if n > 0 {
			fl.last.Store(fl.fs.clock())
		}
		return n, err
	})
}

// watch ends the stalled hops, every tick, until none is in flight.
func (fs *flights) watch() {
	var stalled []*flight
	for {
		time.Sleep(fs.tick)
		now := fs.clock()
		stalled = stalled[:0]
		fs.mu.Lock()
		for fl := range fs.live {
			if time.Duration(now-fl.last.Load()) >= fs.stall {
				stalled = append(stalled, fl)
			}
		}
		idle := len(fs.live) == 0
		if idle {
			fs.watching = false
		}
		fs.mu.Unlock()
		for _, fl := range stalled {
			fl.fire(errStalled)
		}
		if idle {
			return
		}
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
