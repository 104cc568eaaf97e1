package download

// The connection pool: clients of their own per host (h1 for plain http,
// an http.Transport for the rest), so that a host with work keeps its
// connections whatever the others do, and a host without work costs
// nothing.

import (
	"container/list"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync"
	"time"
)

// SpareConns is how many connections over all hosts a Pool keeps open
// beyond two per download slot, less the files open (see Pool).
const SpareConns = 16

// PoolConns is the most connections a Pool for jobs download slots keeps
// open, busy or idle, when no file is open: two descriptors per slot (its
// file and its connection) and SpareConns, which the files open (Pool.Files)
// share with the connections. So a run's descriptors stay within 2 × jobs +
// SpareConns (and a few of its own), and while few files are open, as when
// the slots wait on the network, the pool keeps the connections of more
// hosts than there are slots.
func PoolConns(jobs int) int { return 2*jobs + SpareConns }

// tlsRecord is the most plaintext one TLS record carries.
const tlsRecord = 16 << 10

// releaseGrace is how long a host released by the scheduler keeps its idle
// connections: a line of it may be on its way through the input.
var releaseGrace = time.Second

// Pool is the http.RoundTripper of the client NewClient returns. It sends
// each request through a client of the request's own host (the HostKey of
// its URL, which is also the key of ckfetch's per-host limits): plain-http
// GETs through the lean HTTP/1.1 client h1 (h1.go), everything else
// (https, a proxy) through a Transport cloned from one template Transport
// that holds every transport setting (h1 takes its dialer, header and idle
// timeouts and read buffer from it too). Either keeps up to the per-host
// limit of idle connections, with no cap over all hosts that a busy host
// could lose its connections to. So a host
// with lines queued or running keeps its connections, and over a run the
// connections (and TLS handshakes) follow the hosts × the per-host limit,
// not the requests.
//
// Memory and descriptors follow the hosts in play, not every host seen:
//   - A host's clients exist only while it has a request in flight, a
//     connection being dialled or one open. The clients of a host whose
//     dials failed go with its last request, and with them net/http's
//     per-host state (the queues of requests that waited for a connection)
//     that one shared Transport keeps for every host it ever dialled.
//   - Release(host), which the scheduler calls when the host has nothing
//     queued or running, closes its idle connections after releaseGrace
//     unless it is used again meanwhile.
//   - Connections over all hosts, busy, idle or being dialled, are kept to
//     MaxOpen (PoolConns) less the files open (Files): a dial or the end
//     of a request that passes it closes idle connections, one by one,
//     those of released hosts first, then those of the hosts least recently
//     used. Busy ones are never closed; there are at most jobs of them, one
//     per download slot, and at most jobs files. The Pool knows which
//     connection each request got (httptrace GotConn) and closes just the
//     connections it needs to, never with Transport.CloseIdleConnections on
//     a host with requests in flight: that also makes net/http close each
//     of the host's busy connections when its request ends, until the
//     host's next request, and a busy host would lose all its connections
//     at once.
type Pool struct {
	template *http.Transport
	perHost  int
	maxOpen  int

	// OnConn, if set, is told of every request that got a response (err nil)
	// and of every one that got none because no usable connection could be
	// had (see ConnFailure: refused, unreachable, DNS, a connect or TLS
	// handshake that failed, a new connection closed before any answer).
	// Other errors, and requests cancelled or stalled, say nothing of the
	// host and are not told. It is called with no lock of the Pool held.
	OnConn func(host string, err error)

	// Files, if set, tells how many files the downloads have open: they
	// share the descriptors of MaxOpen with the connections.
	Files func() int

	flights *flights // of the requests sent through RoundTrip (a Fetcher has its own)

	mu      sync.Mutex
	hosts   map[string]*poolHost
	lru     list.List // of *poolHost, the most recently used first
	open    int       // connections open over all hosts
	dialing int       // connections being dialled over all hosts
	closing int       // of them, idle ones trim chose to close
}

// poolHost is one host's clients and its counts.
type poolHost struct {
	key      string
	tr       *http.Transport // net/http's, for what h1 does not send; nil until needed
	h1       *h1             // the lean HTTP/1.1 client of plain http; nil until needed
	elem     *list.Element   // in Pool.lru
	inflight int             // requests whose response body is not closed yet
	dialing  int
	open     int         // connections open
	idleList []*poolConn // connections whose last request ended, none started since: the oldest first
	gone     bool        // dropped from the Pool: dials fail
	released bool        // by the scheduler, and not used since
	timer    *time.Timer // closes the idle connections of a released host
}

// NewPool returns a Pool whose hosts' clients take their settings from
// template (their Transports are clones of it), for jobs downloads at once over all hosts and perHost at once per host.
// template itself never makes a request.
func NewPool(template *http.Transport, jobs, perHost int) *Pool {
	return &Pool{template: template, perHost: perHost, maxOpen: PoolConns(jobs), hosts: map[string]*poolHost{}, flights: newFlights(0)}
}

// MaxOpen is the number of open connections over which the pool closes
// idle ones when no file is open (PoolConns); each file open lowers it by
// one.
func (p *Pool) MaxOpen() int { return p.maxOpen }

// limit is the number of open connections over which the pool closes idle
// ones now. p.mu is held.
func (p *Pool) limit() int {
	if p.Files == nil {
		return p.maxOpen
	}
	return p.maxOpen - p.Files()
}

// RoundTrip sends req through a client of its host, ended by its context.
func (p *Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	fl := p.flights.start(req.Context())
	resp, err := p.roundTrip(req, fl)
	if err != nil {
		fl.end()
		return nil, err
	}
	resp.Body.(*poolBody).fl = fl
	return resp, nil
}

// roundTrip sends req through a client of its host, as the hop fl (see
// flights), which the caller ends once the response body is closed.
func (p *Pool) roundTrip(req *http.Request, fl *flight) (*http.Response, error) {
	key := hostOf(req.URL)
	h, lean, tr := p.use(key, req)
	u := &connUse{p: p}
	var resp *http.Response
	var err error
	if lean != nil {
		resp, err = lean.roundTrip(req, u.gotConn, fl) // no trace to carry in a copy of req
	} else {
		resp, err = tr.RoundTrip(req.WithContext(httptrace.WithClientTrace(fl.context(), &httptrace.ClientTrace{GotConn: u.got})))
	}
	if err != nil {
		p.end(h, u)
		if p.OnConn != nil && fl.err() == nil && fl.ctx.Err() == nil && ConnFailure(err) {
			p.OnConn(key, err)
		}
		return nil, err
	}
	resp.Body = &poolBody{ReadCloser: resp.Body, p: p, h: h, u: u}
	if p.OnConn != nil {
		p.OnConn(key, nil)
	}
	return resp, nil
}

// use returns the host of key, new if it has none, with one more request
// in flight, and the client of that host that sends req: the lean HTTP/1.1
// one where it can (see h1Request), net/http's Transport otherwise (lean is
// nil). Each is made at the host's first request that needs it.
func (p *Pool) use(key string, req *http.Request) (h *poolHost, lean *h1, tr *http.Transport) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h = p.hosts[key]
	if h == nil {
		h = &poolHost{key: key}
		h.elem = p.lru.PushFront(h)
		p.hosts[key] = h
	} else {
		p.lru.MoveToFront(h.elem)
	}
	h.inflight++
	if h.released {
		h.released = false
		h.timer.Stop()
	}
	if h1Request(req, p.template.Proxy) {
		if h.h1 == nil {
			h.h1 = &h1{addr: key, dial: p.hostDial(h), headerTimeout: p.template.ResponseHeaderTimeout,
				idleTimeout: p.template.IdleConnTimeout, maxIdle: p.perHost, readBuf: p.template.ReadBufferSize}
		}
		return h, h.h1, nil
	}
	if h.tr == nil {
		h.tr = p.template.Clone()
		h.tr.MaxIdleConns = 0 // this Transport has one host: MaxIdleConnsPerHost is its cap
		h.tr.MaxIdleConnsPerHost = p.perHost
		// And no more open at once than the per-host limit lets requests
		// run: net/http would otherwise dial for a request that then gets a
		// connection given back first, and keep both.
		h.tr.MaxConnsPerHost = p.perHost
		h.tr.DialContext = p.hostDial(h)
		if req.URL.Scheme == "https" {
			// A TLS connection hands over at most one record (16 KiB) a
			// read: a larger buffer would never fill, on every connection.
			h.tr.ReadBufferSize = min(h.tr.ReadBufferSize, tlsRecord)
		}
	}
	return h, nil, h.tr
}

// hostDial returns the dialer of h's clients: the template's, counted.
func (p *Pool) hostDial(h *poolHost) func(ctx context.Context, network, addr string) (net.Conn, error) {
	dial := p.template.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return p.dial(ctx, h, dial, network, addr)
	}
}

// connUse is the connection one request got, if any yet.
type connUse struct {
	p *Pool
	c *poolConn
}

// got is the request's GotConn hook: the connection is busy again.
func (u *connUse) got(info httptrace.GotConnInfo) { u.gotConn(info.Conn) }

// gotConn tells u the request got conn.
func (u *connUse) gotConn(conn net.Conn) {
	c := poolConnOf(conn)
	if c == nil {
		return
	}
	u.p.mu.Lock()
	defer u.p.mu.Unlock()
	if u.c != nil { // net/http retried the request on another connection
		u.c.ended()
	}
	u.c = c
	c.reqs++
	c.unidle()
}

// poolConnOf returns the Pool's connection under conn (a TLS connection
// wraps it), or nil.
func poolConnOf(conn net.Conn) *poolConn {
	for conn != nil {
		if c, ok := conn.(*poolConn); ok {
			return c
		}
		w, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		conn = w.NetConn()
	}
	return nil
}

// end is called when a request of h has ended: its response body is
// closed, or it got none. The connection it used, if no other request
// uses it, becomes idle.
func (p *Pool) end(h *poolHost, u *connUse) {
	p.mu.Lock()
	h.inflight--
	if u.c != nil {
		u.c.ended()
		u.c = nil
	}
	p.lru.MoveToFront(h.elem)
	victims := p.trim()
	p.drop(h)
	p.mu.Unlock()
	closeConns(victims)
}

var errHostGone = errors.New("connection no longer needed")

// dial opens a connection for h through dial, counted until it is closed.
func (p *Pool) dial(ctx context.Context, h *poolHost, dial func(context.Context, string, string) (net.Conn, error), network, addr string) (net.Conn, error) {
	p.mu.Lock()
	if h.gone {
		// net/http dials in the background and may start after the request
		// that asked ended (it got another connection, or gave up): nothing
		// would use this one.
		p.mu.Unlock()
		return nil, errHostGone
	}
	h.dialing++
	p.dialing++
	victims := p.trim() // the dial's socket is a descriptor too
	p.mu.Unlock()
	closeConns(victims)
	c, err := dial(ctx, network, addr)
	p.mu.Lock()
	h.dialing--
	p.dialing--
	if err == nil {
		h.open++
		p.open++
		c = &poolConn{Conn: c, p: p, h: h}
	} else {
		p.drop(h)
	}
	p.mu.Unlock()
	return c, err
}

// closed is called when connection c is closed.
func (p *Pool) closed(c *poolConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := c.h
	c.unidle()
	if c.doomed {
		p.closing--
	}
	c.gone = true
	h.open--
	p.open--
	p.drop(h)
}

// Release tells the pool that host has nothing queued or running: its idle
// connections are closed after releaseGrace, unless a request of it comes
// first. A host the pool does not hold is not remembered.
func (p *Pool) Release(host string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hosts[host]
	if h == nil || h.released {
		return
	}
	h.released = true
	if h.timer == nil {
		h.timer = time.AfterFunc(releaseGrace, func() { p.expire(h) })
	} else {
		h.timer.Reset(releaseGrace)
	}
}

// expire closes the idle connections of h if it is still released (then
// it has no request in flight, and CloseIdleConnections closes them all).
func (p *Pool) expire(h *poolHost) {
	p.mu.Lock()
	expired := h.released && !h.gone
	tr, lean := h.tr, h.h1
	p.mu.Unlock()
	if !expired {
		return
	}
	if tr != nil {
		tr.CloseIdleConnections()
	}
	if lean != nil {
		lean.CloseIdleConnections()
	}
}

// drop forgets h once it has nothing left: no request, dial or connection.
// p.mu is held.
func (p *Pool) drop(h *poolHost) {
	if h.gone || h.inflight > 0 || h.dialing > 0 || h.open > 0 {
		return
	}
	h.gone = true
	if h.timer != nil {
		h.timer.Stop()
	}
	p.lru.Remove(h.elem)
	if p.hosts[h.key] == h {
		delete(p.hosts, h.key)
	}
}

// trim returns the idle connections that must close to bring the open
// connections back to the limit: first those of hosts released (nothing
// queued or running), then those of the hosts least recently used, the
// oldest idle first. It marks them doomed; the caller closes them with no
// lock held. p.mu is held.
func (p *Pool) trim() []*poolConn {
	excess := p.open + p.dialing - p.closing - p.limit()
	if excess <= 0 {
		return nil
	}
	var victims []*poolConn
	for _, released := range []bool{true, false} {
		for e := p.lru.Back(); e != nil && excess > 0; e = e.Prev() {
			h := e.Value.(*poolHost)
			for h.released == released && len(h.idleList) > 0 && excess > 0 {
				c := h.idleList[0]
				c.unidle()
				c.doomed = true
				p.closing++
				victims = append(victims, c)
				excess--
			}
		}
	}
	return victims
}

// Room makes room for a descriptor that a file or directory is about to
// take, already counted by Files: it closes idle connections, as a dial
// does, if the open ones would be over the limit. Without it the files
// opened between two requests' ends would pass the limit until the next.
func (p *Pool) Room() {
	p.mu.Lock()
	victims := p.trim()
	p.mu.Unlock()
	closeConns(victims)
}

// closeConns closes conns, with no lock held (Close calls back into the
// Pool). net/http's read loop of an idle connection sees it closed and
// drops it; a request that took it meanwhile is retried on another (a
// reused connection that fails before any answer is, for a GET).
func closeConns(conns []*poolConn) {
	for _, c := range conns {
		c.Close()
	}
}

// Stats are a Pool's counts, for tests.
type Stats struct {
	Hosts int // hosts with clients
	Open  int // connections open
}

// Stats returns the Pool's counts.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Hosts: len(p.hosts), Open: p.open}
}

// poolConn is a connection counted by its Pool until it is closed. Its
// fields other than the Conn are guarded by the Pool's mu.
type poolConn struct {
	net.Conn
	p      *Pool
	h      *poolHost
	reqs   int  // requests using it (more than one: HTTP/2)
	idle   bool // in h.idleList
	doomed bool // chosen by trim, being closed
	gone   bool // closed
	once   sync.Once
}

func (c *poolConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.p.closed(c) })
	return err
}

// ended is called when a request that used c has ended: with no other
// request on it, c is idle, the newest of its host's.
func (c *poolConn) ended() {
	if c.reqs--; c.reqs > 0 || c.idle || c.doomed || c.gone {
		return
	}
	c.idle = true
	c.h.idleList = append(c.h.idleList, c)
}

// unidle takes c out of its host's idle connections.
func (c *poolConn) unidle() {
	if !c.idle {
		return
	}
	c.idle = false
	l := c.h.idleList
	for i, x := range l {
		if x == c {
			copy(l[i:], l[i+1:])
			l[len(l)-1] = nil
			c.h.idleList = l[:len(l)-1]
			return
		}
	}
}

// poolBody ends its request in the Pool when it is closed.
type poolBody struct {
	io.ReadCloser
	p    *Pool
	h    *poolHost
	u    *connUse
	fl   *flight // its hop, if RoundTrip started it (Pool.roundTrip's caller ends its own)
	once sync.Once
}

func (b *poolBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() {
		b.p.end(b.h, b.u)
		if b.fl != nil {
			b.fl.end()
		}
	})
	return err
}

// hostOf is the Pool's key of a URL's host, the scheduler's too.
func hostOf(u *url.URL) string { return HostKey(u) }
