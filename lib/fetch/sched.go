package fetch

import (
	"container/heap"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ck-tools/ck/lib/download"
)

// sched owns the -j download slots, the --per-host counts and the pacing of
// each host (-sleep, Retry-After), and hands a free slot to the oldest queued
// line whose host can take it now; a line whose host cannot is passed over,
// never the other way round. So with one host and -j 1 lines start strictly
// in input order, and a line never waits behind a newer one for a slot.
//
// A line is taken from its queue only when it gets a slot, and only then is
// a goroutine started for it: a queued line holds no worker, descriptor or
// file. Each request of a download holds a slot, counted against the host it
// goes to: a retry gives its slot back while it backs off and queues again,
// in its input place, for the next attempt; a redirect hop gives it back and
// queues again, in its input place, for the host it goes to, so --per-host
// and -sleep hold for every host actually contacted (a 302 to the same host
// waits -sleep like any other request).
// Waiting for -sleep or Retry-After never holds a slot: such a host is
// simply not eligible until its time comes, and a timer wakes the scheduler
// then.
//
// When more hosts are in play than the connection pool keeps connections
// for (download.PoolConns less one file per slot, each host with
// --per-host of them, or -j if fewer), the plain rule would make every line
// of a list that interleaves its hosts open a new connection, and close
// another host's. Then a
// slot given back by a host whose last request got a response goes to that
// host's own oldest queued line if it can start now (see handOn): its
// connection is warm. Within a host lines still start in input order, and
// an older line of another host is passed over a bounded number of times.
//
// A host is in play while it has lines queued or running (a running line
// backing off before a retry included); when it has neither, the pool is
// told (hostIdle), and its state is forgotten as soon as its pauses are
// over. Hosts that fail connections are counted in health (health.go).
type sched struct {
	perHost int
	gap     time.Duration      // -sleep
	launch  func(*ticket)      // runs a line's download once it holds its first slot, on a goroutine of its own
	offer   func(*ticket) bool // hands a line that got its first slot to a waiting worker, if one waits; nil: none
	pool    hostPool           // told of hosts out of play; nil: none

	inflight atomic.Int64 // slots held, for the progress display

	mu      sync.Mutex
	free    int // slots not held
	hosts   map[string]*hostState
	ready   hostHeap // hosts that can take a line now, by their oldest line
	timed   hostHeap // hosts that only wait for their time, by that time
	timer   *time.Timer
	timerAt time.Time // when timer fires, zero if not armed
	stopped bool
	added   int

	health    health
	doomed    []*ticket // new lines of unreachable hosts, to fail at the next free slots
	passes    int       // warm handoffs since the last one that went to the oldest line
	maxPasses int
	keepHosts int // hosts in play up to which the pool keeps all their connections, every slot's file open (no handoff)
}

// hostPool is the part of download.Pool the scheduler drives.
type hostPool interface {
	Release(host string)
}

// ticket is a line in the scheduler: queued, or holding a slot.
type ticket struct {
	it        *item
	host      *hostState
	slot      bool          // holds a slot
	fresh     bool          // holds a slot granted for a request not yet started
	reserving bool          // holds its host's -sleep reservation
	grant     chan struct{} // a retry or a redirect hop waiting for a slot: closed when it has one
	dead      error         // its host is unreachable: its first attempt fails with this
}

// hostState is what the scheduler knows of one host (host:port).
type hostState struct {
	name     string
	queue    []*ticket // by input order
	active   int       // slots held by its lines
	lines    int       // lines launched and not done (holding a slot, or backing off)
	warm     bool      // its last request got a response: it has a connection
	reserved bool      // -sleep: one of its lines holds a slot but has not started its request yet
	started  time.Time // the last request start
	hold     time.Time // Retry-After: no start before
	head     int64     // the input place of queue[0], as of the last place: the ready heap's key, kept here to spare Less a walk through two pointers
	heap     *hostHeap // the heap it is in, or nil
	index    int       // its place in heap
}

// readyAt is when host may start its next request.
func (h *hostState) readyAt(gap time.Duration) time.Time {
	at := h.hold
	if !h.started.IsZero() {
		at = latest(at, h.started.Add(gap))
	}
	return at
}

// newSched returns a scheduler of jobs slots; its launch must be set before
// the first add.
func newSched(jobs, perHost int, gap time.Duration) *sched {
	return &sched{perHost: perHost, gap: gap, free: jobs, hosts: map[string]*hostState{},
		timed: hostHeap{byTime: true, gap: gap}, maxPasses: passesPerJob * jobs,
		keepHosts: (download.PoolConns(jobs) - jobs) / min(perHost, jobs)}
}

// passesPerJob bounds the warm handoffs (see handOn): after passesPerJob ×
// -j of them in a row that passed over an older line of another host, the
// next slot goes by the plain rule, to the oldest line that can start. So a
// line waits at most about passesPerJob more downloads' time than without.
const passesPerJob = 8

// sweepEvery is how many added lines separate two sweeps of idle hosts.
const sweepEvery = 4096

// add queues a new line. It returns false if the scheduler was stopped: the
// line will never start.
func (s *sched) add(it *item) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	now := time.Now()
	if s.added++; s.added%sweepEvery == 0 {
		s.sweep(now)
	}
	h := s.host(it.host)
	t := &ticket{it: it, host: h}
	if err := s.unreachable(it.host); err != nil {
		s.doom(t, err)
	} else {
		h.queue = append(h.queue, t) // the newest line so far
		s.place(h, now)
	}
	s.pump(now)
	return true
}

// stop starts no more lines, and returns the new lines still queued (the
// caller settles them as interrupted). Retries still queued see their
// context done and give up by themselves.
func (s *sched) stop() []*item {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.timer != nil {
		s.timer.Stop()
	}
	var left []*item
	for _, t := range s.doomed {
		left = append(left, t.it)
	}
	s.doomed = nil
	for _, h := range s.hosts {
		for _, t := range h.queue {
			if t.grant == nil {
				left = append(left, t.it)
			}
		}
		h.queue = nil
		s.place(h, time.Time{})
	}
	return left
}

// acquire is the download's BeforeAttempt hook: it returns once the line of
// ctx (see withTicket) holds a slot for a request to host and that request
// may start, and records that start for -sleep. host is the host the
// request goes to: the line's own for its first request, the target's for a
// redirect hop. A line's first request uses the slot it was launched with;
// any later one (a retry, a redirect hop, to its own host or another) first
// gives back the slot it holds and queues again, in its input place, in the
// queue of host (see queueFor). release gives the slot back.
func (s *sched) acquire(ctx context.Context, host string) (release func(), err error) {
	t, _ := ctx.Value(ticketKey{}).(*ticket)
	if t == nil {
		return func() {}, nil // not a line of this run
	}
	s.mu.Lock()
	if t.dead != nil { // its first attempt, with the slot it was launched with
		s.mu.Unlock()
		return nil, t.dead
	}
	if host != t.host.name {
		// A redirect to a host known to be unreachable fails as its own
		// lines do, without a request.
		if err := s.unreachable(host); err != nil {
			s.mu.Unlock()
			return nil, err
		}
	}
	if !t.fresh || t.host.name != host {
		if err := s.queueFor(ctx, t, host); err != nil {
			s.mu.Unlock()
			return nil, err
		}
	}
	t.fresh = false
	h := t.host
	h.started = time.Now()
	if t.reserving {
		t.reserving, h.reserved = false, false
	}
	s.place(h, h.started)
	s.pump(h.started)
	s.mu.Unlock()
	return func() { s.mu.Lock(); defer s.mu.Unlock(); s.release(t) }, nil
}

// queueFor gives back the slot t holds, if any, queues t in its input place
// for host, and waits until it is granted a slot there (or ctx is done).
// A line that waits for a host never holds a slot: a redirect target that is
// paused (-sleep, Retry-After) or at its --per-host limit keeps the slot
// free for the lines of other hosts, as a retry's backoff does; and in its
// input place it never waits behind a newer line of that host. s.mu is held,
// and held again on return.
func (s *sched) queueFor(ctx context.Context, t *ticket, host string) error {
	s.release(t)
	if s.stopped {
		return context.Canceled
	}
	grant := make(chan struct{})
	t.grant = grant
	s.requeue(t, host)
	now := time.Now()
	s.place(t.host, now)
	s.pump(now)
	s.mu.Unlock()
	select {
	case <-grant:
		s.mu.Lock()
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		if t.slot {
			s.release(t)
		} else {
			s.unqueue(t)
		}
		return ctx.Err()
	}
}

// done is called when the download of t's line has returned: a slot it
// still holds (it ended before any request: its file was there, or a local
// error) is given back.
func (s *sched) done(t *ticket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.release(t)
	t.host.lines--
	s.idle(t.host)
}

// Wait is part of download.Pacer: it returns at once, since the scheduler
// paces a host when it hands out slots.
func (s *sched) Wait(ctx context.Context, host string) error { return ctx.Err() }

// Start is part of download.Pacer: see Wait.
func (s *sched) Start(ctx context.Context, host string) error { return ctx.Err() }

// Hold keeps requests to host from starting before t (Retry-After).
func (s *sched) Hold(host string, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.host(host)
	h.hold = latest(h.hold, t)
	s.place(h, time.Now())
}

// release gives t's slot back, if it holds one, and hands it on. s.mu is
// held.
func (s *sched) release(t *ticket) {
	if !t.slot {
		return
	}
	h := t.host
	t.slot, t.fresh = false, false
	s.free++
	s.inflight.Add(-1)
	h.active--
	if t.reserving {
		t.reserving, h.reserved = false, false // no request was made
	}
	now := time.Now()
	s.place(h, now)
	s.handOn(h, now)
	s.pump(now)
}

// pump hands free slots out by the rule, and arms the timer for the next
// host whose time comes. s.mu is held.
func (s *sched) pump(now time.Time) {
	if s.stopped {
		return
	}
	for s.timed.Len() > 0 && !s.timed.hosts[0].readyAt(s.gap).After(now) {
		s.place(s.timed.hosts[0], now)
	}
	s.failDoomed()
	for s.free > 0 && s.ready.Len() > 0 {
		s.passes = 0
		s.start(s.ready.hosts[0], now)
	}
	if s.free > 0 && s.timed.Len() > 0 {
		s.arm(s.timed.hosts[0].readyAt(s.gap), now)
	}
}

// start gives a free slot to h's oldest queued line. s.mu is held, and h
// can take a line now.
func (s *sched) start(h *hostState, now time.Time) {
	t := h.queue[0]
	h.queue[0] = nil
	h.queue = h.queue[1:]
	s.free--
	s.inflight.Add(1)
	h.active++
	t.slot, t.fresh = true, true
	if s.gap > 0 {
		t.reserving, h.reserved = true, true
	}
	s.place(h, now)
	if t.grant != nil {
		close(t.grant)
		t.grant = nil
	} else {
		h.lines++
		if s.offer == nil || !s.offer(t) {
			go s.launch(t) // no worker waits: a goroutine that becomes one
		}
	}
}

// handOn gives the slot h just gave back to h's own oldest queued line, if
// h can start it now and its last request got a response (its connection
// is warm), when more hosts are in play than the pool keeps all the
// connections of (keepHosts): the plain rule would then give the slot to a host whose
// connection is gone, and h's would be closed before its next line's turn.
// When this passes over an older line of another host, it counts against
// maxPasses, after which the slot goes by the plain rule (pump). s.mu is
// held.
func (s *sched) handOn(h *hostState, now time.Time) {
	if s.stopped || s.free == 0 || !h.warm || h.heap != &s.ready || len(s.doomed) > 0 ||
		len(s.hosts) <= s.keepHosts {
		return
	}
	if s.ready.hosts[0] != h { // an older line of another host could start
		if s.passes >= s.maxPasses {
			return
		}
		s.passes++
	}
	s.start(h, now)
}

// idle tells the pool of a host out of play, and forgets its state when
// nothing needs it any more. s.mu is held.
func (s *sched) idle(h *hostState) {
	if len(h.queue) > 0 || h.lines > 0 {
		return
	}
	if cur := s.hosts[h.name]; cur != nil && cur != h {
		return // an old state of a host that has a new one (a doomed line's)
	}
	if s.pool != nil {
		s.pool.Release(h.name)
	}
	if !h.readyAt(s.gap).After(time.Now()) && s.hosts[h.name] == h {
		delete(s.hosts, h.name)
	}
}

// arm makes sure the timer fires by at. s.mu is held.
func (s *sched) arm(at, now time.Time) {
	if !s.timerAt.IsZero() && !s.timerAt.After(at) {
		return
	}
	s.timerAt = at
	if s.timer == nil {
		s.timer = time.AfterFunc(at.Sub(now), s.tick)
	} else {
		s.timer.Reset(at.Sub(now))
	}
}

func (s *sched) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timerAt = time.Time{}
	s.pump(time.Now())
}

// place puts h in the heap its state calls for, or in its place in the
// heap it is in (a new oldest line, a new time). s.mu is held.
func (s *sched) place(h *hostState, now time.Time) {
	if len(h.queue) > 0 {
		h.head = h.queue[0].it.seq
	}
	var want *hostHeap
	switch {
	case len(h.queue) == 0 || h.active >= s.perHost || h.reserved:
	case h.readyAt(s.gap).After(now):
		want = &s.timed
	default:
		want = &s.ready
	}
	switch {
	case h.heap == want && want != nil:
		heap.Fix(want, h.index) // one pass instead of a removal and a push: over many hosts this is the scheduler's main cost
	case h.heap != want:
		if h.heap != nil {
			heap.Remove(h.heap, h.index)
		}
		if want != nil {
			heap.Push(want, h)
		}
	}
}

// host returns the state of the host name, new if it has none. s.mu is held.
func (s *sched) host(name string) *hostState {
	h := s.hosts[name]
	if h == nil {
		h = &hostState{name: name}
		s.hosts[name] = h
	}
	return h
}

// requeue puts a line that asks again (a retry, a redirect hop) in the
// queue of host, in input order. s.mu is held.
func (s *sched) requeue(t *ticket, host string) {
	// The line is in play for the host it now asks, no more for the one it
	// leaves (a redirect hop to another host). A host's state is looked up
	// anew even for the same host: it may have a new one since.
	if old := t.host; s.host(host) != old {
		t.host = s.host(host)
		old.lines--
		t.host.lines++
		s.idle(old)
	}
	q := t.host.queue
	i := len(q)
	for i > 0 && q[i-1].it.seq > t.it.seq {
		i--
	}
	q = append(q, nil)
	copy(q[i+1:], q[i:])
	q[i] = t
	t.host.queue = q
}

// unqueue takes a retry that gave up out of its host's queue. s.mu is held.
func (s *sched) unqueue(t *ticket) {
	h := t.host
	for i, q := range h.queue {
		if q == t {
			h.queue = append(h.queue[:i], h.queue[i+1:]...)
			break
		}
	}
	t.grant = nil
	s.place(h, time.Now())
}

// sweep forgets hosts with nothing queued or running whose pauses are over,
// so the map does not grow with every host ever seen: idle forgets most at
// once, this those that still had a pause to wait then. s.mu is held.
func (s *sched) sweep(now time.Time) {
	for name, h := range s.hosts {
		if len(h.queue) == 0 && h.lines == 0 && h.active == 0 && !h.readyAt(s.gap).After(now) {
			delete(s.hosts, name)
		}
	}
}

type ticketKey struct{}

// withTicket returns ctx carrying t, for acquire: download.Fetcher calls its
// BeforeAttempt hook with the context given to Fetch, which is how the hook
// knows which line asks.
func withTicket(ctx context.Context, t *ticket) context.Context {
	return context.WithValue(ctx, ticketKey{}, t)
}

// hostHeap is a heap of hosts: by the input order of their oldest queued
// line, or by the time they may start their next request.
type hostHeap struct {
	byTime bool
	gap    time.Duration
	hosts  []*hostState
}

func (q *hostHeap) Len() int { return len(q.hosts) }

func (q *hostHeap) Less(i, j int) bool {
	a, b := q.hosts[i], q.hosts[j]
	if q.byTime {
		return a.readyAt(q.gap).Before(b.readyAt(q.gap))
	}
	return a.head < b.head
}

func (q *hostHeap) Swap(i, j int) {
	q.hosts[i], q.hosts[j] = q.hosts[j], q.hosts[i]
	q.hosts[i].index, q.hosts[j].index = i, j
}

func (q *hostHeap) Push(x any) {
	h := x.(*hostState)
	h.heap, h.index = q, len(q.hosts)
	q.hosts = append(q.hosts, h)
}

func (q *hostHeap) Pop() any {
	n := len(q.hosts) - 1
	h := q.hosts[n]
	q.hosts[n] = nil
	q.hosts = q.hosts[:n]
	h.heap = nil
	return h
}

func latest(ts ...time.Time) time.Time {
	l := ts[0]
	for _, t := range ts[1:] {
		if t.After(l) {
			l = t
		}
	}
	return l
}
