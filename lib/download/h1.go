package download

// The lean HTTP/1.1 client: one host's plain-http GETs, without net/http's
// two goroutines and their hand-offs per connection.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// h1 sends the plain-http requests of one host of a Pool over HTTP/1.1
// connections it keeps itself; https, proxies and anything else go through
// net/http's Transport (see h1Request). Requests are written as
// http.Request.Write writes them (writeRequest, the same bytes) and
// answers read into the Response http.ReadResponse would make (ReadResponse
// in h1resp.go: the common head parsed here, any other by net/http's own
// parser), so the bytes on the wire and the meaning of the answer are
// net/http's: what it leaves out is the machinery around them. net/http
// runs a read goroutine and a write goroutine per connection, and a request
// passes through both by channels, which costs about as much CPU per small
// file as everything else ckfetch does in user space. Here the request's
// own goroutine writes the request and reads the answer.
//
// What net/http's Transport does that matters here is kept:
//   - A connection is reused only after its response body was read to the
//     end, with no byte after it, when neither side asked to close it; a
//     body closed early closes its connection.
//   - A connection taken from the idle ones is checked first (a peek that
//     does not wait): one the server closed while it was idle is dropped,
//     and so is one with bytes the server sent unasked (a response that
//     was longer than it said): they would be read as the next answer.
//   - A request on a reused connection that fails before any byte of an
//     answer (the server closed it meanwhile) is sent again on another, as
//     net/http does for a GET.
//   - The wait for the response headers is bounded by headerTimeout, or
//     by the stall watch when one watches the request's hop (a read
//     deadline set and cleared per request would then only repeat it).
//     The hop's end from outside (its context done, a stall: see flights)
//     ends a write or a read at once: it sets the connection's deadline in
//     the past.
//   - 1xx answers before the final one are skipped.
//   - Idle connections older than idleTimeout are closed instead of used.
//
// Its connections come from dial, the Pool's counted dialer, and each
// request tells the Pool which one it got, as net/http's Transport does
// through httptrace's GotConn: the Pool's bookkeeping is the same for both
// clients, without a copy of the request and a context to carry the hook.
type h1 struct {
	addr          string // host:port, the one host it sends to
	dial          func(ctx context.Context, network, addr string) (net.Conn, error)
	headerTimeout time.Duration // 0: none
	idleTimeout   time.Duration // 0: none
	maxIdle       int
	readBuf       int

	mu   sync.Mutex
	idle []*h1Conn // the most recently used last
}

// h1Request reports whether the lean client can send req: a GET or HEAD
// without a body over plain http to a host written in the bytes a Host
// header takes as they are (ASCII letters, digits and -._~:[]!$&'()*+,;=,
// so no IDNA, no IPv6 zone to remove), no proxy, and headers that net/http
// would not refuse; writeRequest writes it as Request.Write would. proxy
// is the Transport's Proxy function.
func h1Request(req *http.Request, proxy func(*http.Request) (*url.URL, error)) bool {
	if req.URL.Scheme != "http" || (req.Method != http.MethodGet && req.Method != http.MethodHead) ||
		(req.Body != nil && req.Body != http.NoBody) || req.ContentLength != 0 || len(req.TransferEncoding) > 0 ||
		req.Trailer != nil || req.Close || !plainHost(req.URL.Host) || (req.Host != "" && !plainHost(req.Host)) {
		return false
	}
	if proxy != nil {
		if u, err := proxy(req); err != nil || u != nil {
			return false
		}
	}
	for name, values := range req.Header {
		if !validName(name) { // request.go's, which checks -H
			return false
		}
		for _, v := range values {
			if !validFieldValue(v) {
				return false
			}
		}
	}
	return true
}

// plainHost reports whether s is a Host header that net/http sends as it
// is: no byte its Request.Write would refuse, punycode or strip.
func plainHost(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~:[]!$&'()*+,;=", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// validFieldValue refuses the control characters that would end or split
// a header line (a tab is allowed).
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// h1Conn is one connection of an h1.
type h1Conn struct {
	nc     net.Conn // the Pool's *poolConn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time

	// The idle check (quiet): the socket, its peek and the peek's answer;
	// askable is false for a socket that cannot be reached (never quiet).
	rc      syscall.RawConn
	peek    func(fd uintptr) bool
	peekOK  bool
	askable bool

	mu        sync.Mutex
	cancelled bool // aborted (its hop ended from outside): the deadline set in the past stays
}

// errServerClosedIdle is the error of a request whose reused connection the
// server had closed: it is sent again on another.
var errServerClosedIdle = errors.New("server closed idle connection")

// errHeaderTimeout is the error of a response whose headers did not come
// within the header timeout (the stall timeout).
var errHeaderTimeout = errors.New("timeout awaiting response headers")

// roundTrip sends req, which h1Request accepted, to t's host as the hop fl,
// and tells got each connection it sends it on.
func (t *h1) roundTrip(req *http.Request, got func(net.Conn), fl *flight) (*http.Response, error) {
	for {
		c, reused, err := t.conn(fl, t.addr)
		if err != nil {
			return nil, err
		}
		got(c.nc)
		resp, err := t.send(fl, c, req, reused)
		if err == nil {
			return resp, nil
		}
		c.nc.Close()
		if !reused || !errors.Is(err, errServerClosedIdle) || fl.err() != nil {
			return nil, err
		}
	}
}

// conn returns an idle connection that is still usable (reused true), or a
// new one, dialled within fl.
func (t *h1) conn(fl *flight, addr string) (c *h1Conn, reused bool, err error) {
	for {
		t.mu.Lock()
		n := len(t.idle)
		if n == 0 {
			t.mu.Unlock()
			break
		}
		c = t.idle[n-1]
		t.idle[n-1] = nil
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		if t.idleTimeout > 0 && time.Since(c.idleAt) > t.idleTimeout || !c.quiet() {
			c.nc.Close()
			continue
		}
		return c, true, nil
	}
	nc, err := t.dial(fl.context(), "tcp", addr)
	if err != nil {
		if cause := fl.err(); cause != nil {
			return nil, false, cause
		}
		return nil, false, err
	}
	return t.newH1Conn(nc), false, nil
}

// quiet reports whether an idle connection has nothing to read and is not
// closed by its peer: a peek that does not wait (one system call, through
// the connection's syscall.RawConn and a callback made once per connection).
// A connection that cannot be asked (not a socket) counts as quiet; one
// whose socket cannot be reached, as not.
func (c *h1Conn) quiet() bool {
	if c.rc == nil {
		return c.askable
	}
	c.peekOK = false
	return c.rc.Read(c.peek) == nil && c.peekOK
}

// newH1Conn wraps a new connection of t.
func (t *h1) newH1Conn(nc net.Conn) *h1Conn {
	c := &h1Conn{nc: nc, br: bufio.NewReaderSize(nc, t.readBuf), bw: bufio.NewWriterSize(nc, 4<<10), askable: true}
	inner := nc
	if pc, ok := nc.(*poolConn); ok {
		inner = pc.Conn
	}
	if sc, ok := inner.(syscall.Conn); ok {
		rc, err := sc.SyscallConn()
		if err != nil {
			c.askable = false
			return c
		}
		c.rc = rc
		c.peek = func(fd uintptr) bool {
			var b [1]byte
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			c.peekOK = err == syscall.EAGAIN // nothing unasked, not closed (n == 0: EOF)
			return true
		}
	}
	return c
}

// send writes req on c and reads the answer's headers, as the hop fl. On
// an error c is not usable again (the caller closes it).
func (t *h1) send(fl *flight, c *h1Conn, req *http.Request, reused bool) (*http.Response, error) {
	c.mu.Lock()
	c.cancelled = false
	c.mu.Unlock()
	if err := fl.attach(c); err != nil {
		return nil, err
	}
	deadline := t.headerTimeout > 0 && !fl.watched()
	if deadline {
		c.nc.SetReadDeadline(time.Now().Add(t.headerTimeout))
	}
	resp, err := t.exchange(c, req, reused)
	if err != nil {
		fl.detach()
		if cause := fl.err(); cause != nil {
			return nil, cause
		}
		return nil, err
	}
	c.mu.Lock()
	if !c.cancelled && deadline {
		c.nc.SetReadDeadline(time.Time{})
	}
	c.mu.Unlock()
	b := &h1Body{t: t, c: c, rc: resp.Body, fl: fl,
		keep: !resp.Close && !req.Close && !wantsClose(req.Header)}
	if resp.Body == http.NoBody {
		b.eof()
	}
	resp.Body = b
	return resp, nil
}

var aLongTimeAgo = time.Unix(1, 0)

// abort ends the write or read on c now, and any later one: its deadline
// goes to the past, and stays there (send clears no deadline after it).
func (c *h1Conn) abort() {
	c.mu.Lock()
	c.cancelled = true
	c.nc.SetDeadline(aLongTimeAgo)
	c.mu.Unlock()
}

// defaultUserAgent is net/http's, sent when a request has none.
const defaultUserAgent = "Go-http-client/1.1"

// excluded are the headers Request.Write does not copy from Header: it
// writes them itself, or (for a request without a body) not at all.
func excluded(name string) bool {
	switch name {
	case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
		return true
	}
	return false
}

// writeRequest writes req, which h1Request accepted, to w: the bytes
// Request.Write writes for it (TestWriteRequestAsNetHTTP compares them),
// without its fmt.Fprintf per line, its sort through a pooled sorter and
// its transfer writer, which cost a few per cent of ckfetch's CPU on
// small files. The request line, Host (req.Host, else the URL's), the
// User-Agent (net/http's default when the header is absent, none when it
// is empty), then the other headers sorted by name, each value with its
// spaces and tabs at both ends trimmed (h1Request refused line breaks).
func writeRequest(w *bufio.Writer, req *http.Request) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	ruri := req.URL.RequestURI()
	for i := 0; i < len(ruri); i++ {
		if c := ruri[i]; c < ' ' || c == 0x7f {
			return errors.New("net/http: can't write control character in Request.URL")
		}
	}
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(ruri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	ua := defaultUserAgent
	if v, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(v) > 0 {
			ua = v[0]
		}
	}
	if ua != "" { // trimmed after the test, as net/http does: "  " sends an empty one
		writeField(w, "User-Agent", strings.Trim(ua, " \t"))
	}
	var buf [8]string
	names := buf[:0]
	for name := range req.Header {
		if !excluded(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range req.Header[name] {
			writeField(w, name, strings.Trim(v, " \t"))
		}
	}
	_, err := w.WriteString("\r\n")
	return err
}

func writeField(w *bufio.Writer, name, value string) {
	w.WriteString(name)
	w.WriteString(": ")
	w.WriteString(value)
	w.WriteString("\r\n")
}

// max1xx is how many 1xx answers exchange skips (net/http's limit too): a
// server that sends them without end would otherwise hold the request as
// long as it likes when no stall timeout bounds the header wait.
const max1xx = 5

// exchange writes req and reads the answer's headers, skipping 1xx ones.
func (t *h1) exchange(c *h1Conn, req *http.Request, reused bool) (*http.Response, error) {
	if err := writeRequest(c.bw, req); err != nil {
		return nil, noAnswer(err, reused)
	}
	if err := c.bw.Flush(); err != nil {
		return nil, noAnswer(err, reused)
	}
	for informational := 0; ; informational++ {
		if informational > max1xx {
			return nil, fmt.Errorf("more than %d informational (1xx) answers before the response", max1xx)
		}
		if _, err := c.br.Peek(1); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, errHeaderTimeout
			}
			return nil, noAnswer(err, reused)
		}
		resp, err := ReadResponse(c.br, req)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, errHeaderTimeout
			}
			return nil, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		return resp, nil
	}
}

// noAnswer is the error of a connection that failed before any byte of an
// answer. On a reused connection, one that a closed connection gives (EOF,
// reset, broken pipe, or closed here: the Pool closes idle connections to
// make room, and a request may have taken one just before) marks it
// errServerClosedIdle: the request is sent again. On a new one it is the
// host's failure (see ConnFailure: the cause stays in the chain).
func noAnswer(err error, reused bool) error {
	closed := errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
	switch {
	case reused && (closed || errors.Is(err, net.ErrClosed)):
		return fmt.Errorf("%w (%w)", errServerClosedIdle, err)
	case closed:
		return fmt.Errorf("connection closed before any answer: %w", err)
	}
	return err
}

// wantsClose reports whether the request's headers ask to close the
// connection after it.
func wantsClose(h http.Header) bool {
	for _, v := range h["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "close") {
				return true
			}
		}
	}
	return false
}

// h1Body is a response body of an h1: at its end, its connection goes back
// to the idle ones when it may be reused; closed before, the connection is
// closed. Close may come while a Read waits (it ends the Read).
type h1Body struct {
	t    *h1
	c    *h1Conn
	rc   io.ReadCloser // nil once read to its end
	fl   *flight       // the hop it is the answer of
	keep bool          // neither side asked to close the connection
	done atomic.Bool   // c is given back or closed
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.rc == nil {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.eof()
	case err != nil:
		if cause := b.fl.err(); cause != nil {
			err = cause
		}
		b.finish(false)
	}
	return n, err
}

// eof ends a body read to its end: its connection is reused if no byte
// follows the answer in the read buffer.
func (b *h1Body) eof() {
	b.finish(b.keep && b.c.br.Buffered() == 0)
	b.rc = nil
}

// finish gives the connection back (reuse) or closes it, once.
func (b *h1Body) finish(reuse bool) {
	if b.done.Swap(true) {
		return
	}
	if b.fl.detach() {
		reuse = false // ended from outside: its deadline may be in the past
	}
	if reuse {
		b.t.put(b.c)
	} else {
		b.c.nc.Close()
	}
}

func (b *h1Body) Close() error {
	b.finish(false)
	return nil
}

// put makes c idle, the most recently used; beyond maxIdle the oldest idle
// one is closed.
func (t *h1) put(c *h1Conn) {
	c.idleAt = time.Now()
	t.mu.Lock()
	var extra *h1Conn
	switch {
	case t.maxIdle <= 0:
		extra = c
	case len(t.idle) >= t.maxIdle:
		extra = t.idle[0]
		copy(t.idle, t.idle[1:])
		t.idle[len(t.idle)-1] = c
	default:
		t.idle = append(t.idle, c)
	}
	t.mu.Unlock()
	if extra != nil {
		extra.nc.Close()
	}
}

// CloseIdleConnections closes the idle connections.
func (t *h1) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
}
