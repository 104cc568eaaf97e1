// Package fetchtest is an HTTP server for tests that misbehaves on purpose.
//
// Its behaviour is written in the URL, so that Go tests, testscript files and
// shell scripts can share one server without configuring it:
//
//	/f/NAME?size=N&OPTIONS   N deterministic bytes derived from NAME (see Body)
//	/status/CODE             always that status; ?location=L adds a Location
//	                         header L, as given (a redirect elsewhere, or a
//	                         malformed one)
//	/redirect?to=URL         a 302 (or ?status=301, 303, 307, 308) to URL, which may be
//	                         another server's (a redirect to another host)
//	/_stats                  statistics as JSON (see Stats; ?log=1 adds the log)
//	/_reset                  clears the statistics and the per-URL counters
//
// The options of /f/NAME, which combine, are:
//
//	size=N           body size in bytes (default DefaultSize)
//	fail=K           the first K requests for this URL answer status=S (default 503)
//	retry-after=V    with fail (or /status): a Retry-After header with V as given
//	reset=N          the first resets=K (default 1) requests send N bytes of body and
//	                 then reset the TCP connection (RST), under a full Content-Length
//	truncate=N       the same as reset but close the connection cleanly (FIN), so a
//	                 client sees an unexpected EOF; truncates=K (default 1)
//	stall=N          the first stalls=K (default 1) requests stop after N bytes for
//	                 stalldur=D (Go duration; default or 0: until the client goes
//	                 away or the server closes); stall=0 stalls right after the headers
//	delay=D          the first delays=K (default 1) requests wait D before the headers
//	slow=B           send the body at B bytes per second
//	norange=1        ignore Range: always 200 with the full body
//	nolength=1       no Content-Length (chunked encoding)
//	gzip=1           Content-Encoding: gzip when the request accepts it (Range is
//	                 then ignored and there is no Content-Length)
//	etag=changing    body, ETag and Last-Modified change on every request: request
//	                 n for this URL gets version n (see BodyVersion)
//	noetag=1         no ETag header; nolastmod=1: no Last-Modified header
//	redirect=N       a chain of N 302 redirects to the same URL with redirect=N-1
//	                 (the last hop drops the option) before the content
//	short206=N       a ranged answer (206) sends at most N bytes, with an honest
//	                 Content-Range ending there ("bytes A-(A+N-1)/SIZE"): the client
//	                 must ask again for the rest
//	ignoreifrange=1  Range is honoured whatever If-Range says; with etag=changing a
//	                 resumed request gets a 206 of the NEW version, with its new ETag
//	weaklastmod=1    no ETag, and a Last-Modified equal to Date (both the version's
//	                 fixed time): a weak validator, which a client must not resume on
//	tag=ANY          ignored: makes a distinct URL (and counters) for the same body
//
// Unknown options are a 400, so a typo does not silently test nothing. The
// order of evaluation is: delay, redirect, fail, then the content with its
// faults. "The first K requests" counts requests for the exact URL (path and
// query), from the start of the server or the last Reset. Faults at byte N
// trigger only when the body has more than N bytes to send; with gzip they
// count compressed bytes. HEAD gets the headers of GET.
//
// The server counts the TCP connections it accepts (Stats.Conns, Server.Conns),
// so a test can see whether a client reuses them, and keeps the protocol and
// the headers of the first 10,000 requests (Server.Received), so a test can
// see what a client sent (a header, its User-Agent, credentials or their
// absence). The log has when each request began and ended, and MaxActive
// the most requests in flight at once, so a test can see how a client paces
// them.
//
// NewTLS starts the same server over HTTPS, with HTTP/2, under a certificate
// of a CA made for that server alone (Server.CAPEM).
//
// Responses carry a strong ETag and a Last-Modified, honour a single Range
// (206 with Content-Range; 416 with "Content-Range: bytes */SIZE" when
// unsatisfiable) and If-Range (a validator that does not match gives 200 and
// the full body).
//
// Every wait (stall, delay, slow) ends when the client goes away or the
// server is closed, so Close never hangs.
package fetchtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// maxLog is how many requests the log keeps (the first ones); the counters
// go on counting. maxReceived is how many requests' headers are kept.
const (
	maxLog      = 100_000
	maxReceived = 10_000
)

// Server is a misbehaving test server on 127.0.0.1 (see the package comment).
// The embedded httptest.Server gives URL, Listener and Client.
type Server struct {
	*httptest.Server

	// CAPEM is the certificate of the CA that signed a NewTLS server's
	// certificate, in PEM; nil for a plain HTTP server.
	CAPEM []byte

	ctx    context.Context // parent of every request's context
	cancel context.CancelFunc

	mu       sync.Mutex
	conns    int
	active   int // requests in flight
	maxAct   int // the most in flight at once
	total    int
	bytes    int64
	urls     map[string]*URLStats
	log      []Request
	dropped  int
	received []received
	gen      int // bumped by Reset: requests begun before it no longer count
}

// Request is one entry of the request log.
type Request struct {
	Method  string `json:"method"`
	URL     string `json:"url"`      // path and query, as Requests takes it
	Range   string `json:"range"`    // the Range header, "" if none
	IfRange string `json:"if_range"` // the If-Range header, "" if none
	Status  int    `json:"status"`   // 0 while the headers are not written
	Bytes   int64  `json:"bytes"`    // body bytes sent so far (content only)
	// Start is when the handler began, End when it returned (zero while in
	// flight): a small response reaches the client only after End.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Received is what a client sent in one request besides its URL.
type Received struct {
	Proto  string      // "HTTP/1.1", "HTTP/2.0"
	Host   string      // the Host header (:authority in HTTP/2)
	Header http.Header // as the server read it (Host is not in it)
}

type received struct {
	url string // path and query
	Received
}

// URLStats are the counters of one URL (path and query).
type URLStats struct {
	Requests int   `json:"requests"`
	Ranged   int   `json:"ranged"` // requests that had a Range header
	Bytes    int64 `json:"bytes"`  // content body bytes sent
}

// Stats is a snapshot of the server's counters, and the JSON of /_stats.
type Stats struct {
	Conns      int                 `json:"conns"` // TCP connections accepted
	Requests   int                 `json:"requests"`
	MaxActive  int                 `json:"max_active"` // the most requests in flight at once
	Bytes      int64               `json:"bytes"`
	URLs       map[string]URLStats `json:"urls"`
	Log        []Request           `json:"log,omitempty"`
	LogDropped int                 `json:"log_dropped,omitempty"`
}

// New starts a Server on a random port of 127.0.0.1.
func New() *Server {
	s := newServer()
	s.Start()
	return s
}

// Listen starts a Server on addr (host:port; port 0 picks a free one).
func Listen(addr string) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s := newServer()
	s.Listener.Close()
	s.Listener = l
	s.Start()
	return s, nil
}

func newServer() *Server {
	s := &Server{urls: make(map[string]*URLStats)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.Server = httptest.NewUnstartedServer(s)
	s.Config.BaseContext = func(net.Listener) context.Context { return s.ctx }
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
		}
	}
	return s
}

// Close ends every stall, delay and slow body at once, closes all client
// connections and shuts the server down.
func (s *Server) Close() {
	s.cancel()
	s.Server.CloseClientConnections()
	s.Server.Close()
}

// key turns a URL, absolute or path-and-query, into the statistics key.
func key(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.RequestURI()
}

// Requests returns how many requests the server got for u: a path and query
// ("/f/a?size=10") or a whole URL (srv.URL + "/f/a?size=10").
func (s *Server) Requests(u string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.urls[key(u)]; st != nil {
		return st.Requests
	}
	return 0
}

// URLStats returns the counters of u (see Requests for its form).
func (s *Server) URLStats(u string) URLStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.urls[key(u)]; st != nil {
		return *st
	}
	return URLStats{}
}

// Conns returns how many TCP connections the server accepted (those of
// /_stats and /_reset included), since the start or the last Reset.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// MaxActive returns the most requests (/_stats and /_reset excluded) the
// server had in flight at once, since the start or the last Reset.
func (s *Server) MaxActive() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxAct
}

// TotalRequests returns how many requests the server got, /_stats and
// /_reset excluded.
func (s *Server) TotalRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// BytesSent returns how many content body bytes the server sent, all URLs
// together (error, redirect and /status bodies do not count).
func (s *Server) BytesSent() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// Log returns a copy of the request log, in arrival order (the first
// 100,000 requests).
func (s *Server) Log() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// Received returns what the client sent in each request for u (see
// Requests for its form), in arrival order, among the first 10,000 requests.
func (s *Server) Received(u string) []Received {
	k := key(u)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Received
	for _, r := range s.received {
		if r.url == k {
			out = append(out, Received{Proto: r.Proto, Host: r.Host, Header: r.Header.Clone()})
		}
	}
	return out
}

// Stats returns a snapshot of all counters, with the log if withLog.
func (s *Server) Stats(withLog bool) Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Conns: s.conns, Requests: s.total, MaxActive: s.maxAct, Bytes: s.bytes, URLs: make(map[string]URLStats, len(s.urls))}
	for k, v := range s.urls {
		st.URLs[k] = *v
	}
	if withLog {
		st.Log = append([]Request{}, s.log...)
		st.LogDropped = s.dropped
	}
	return st
}

// Reset clears the counters (Conns too) and the log, which also re-arms every "first K
// requests" fault and restarts etag=changing versions.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.conns, s.total, s.bytes, s.dropped = 0, 0, 0, 0
	s.maxAct = s.active
	s.urls = make(map[string]*URLStats)
	s.log = nil
	s.received = nil
}

// entry is a request in flight: where its counters are.
type entry struct {
	url *URLStats
	log int // index in s.log, or -1
	n   int // this request's number for its URL, from 1
	gen int // s.gen when it began
}

func (s *Server) begin(r *http.Request) *entry {
	k := r.URL.RequestURI()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	s.active++
	s.maxAct = max(s.maxAct, s.active)
	u := s.urls[k]
	if u == nil {
		u = &URLStats{}
		s.urls[k] = u
	}
	u.Requests++
	e := &entry{url: u, log: -1, n: u.Requests, gen: s.gen}
	rg := r.Header.Get("Range")
	if rg != "" {
		u.Ranged++
	}
	if len(s.log) < maxLog {
		e.log = len(s.log)
		s.log = append(s.log, Request{Method: r.Method, URL: k, Range: rg, IfRange: r.Header.Get("If-Range"), Start: time.Now()})
	} else {
		s.dropped++
	}
	if len(s.received) < maxReceived {
		s.received = append(s.received, received{url: k, Received: Received{Proto: r.Proto, Host: r.Host, Header: r.Header.Clone()}})
	}
	return e
}

// end is called when the handler of e returns.
func (s *Server) end(e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if e.gen == s.gen && e.log >= 0 {
		s.log[e.log].End = time.Now()
	}
}

func (s *Server) setStatus(e *entry, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.gen == s.gen && e.log >= 0 {
		s.log[e.log].Status = code
	}
}

func (s *Server) addBytes(e *entry, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.gen != s.gen {
		return
	}
	s.bytes += n
	e.url.Bytes += n
	if e.log >= 0 {
		s.log[e.log].Bytes += n
	}
}

// StatsJSON returns the /_stats JSON of the server at url: its base URL or
// its /_stats URL (a query such as ?log=1 is kept).
func StatsJSON(u string) ([]byte, error) {
	p, err := url.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("parse stats url: %w", err)
	}
	if !strings.HasSuffix(p.Path, "/_stats") {
		p.Path = strings.TrimSuffix(p.Path, "/") + "/_stats"
	}
	resp, err := http.Get(p.String())
	if err != nil {
		return nil, fmt.Errorf("get stats: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read stats from %s: %w", p, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get stats from %s: %s", p, resp.Status)
	}
	return b, nil
}

// GetStats is StatsJSON decoded.
func GetStats(u string) (Stats, error) {
	var st Stats
	b, err := StatsJSON(u)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("decode stats: %w", err)
	}
	return st, nil
}

// Refuser is an address on 127.0.0.1 that refuses every connection: a TCP
// socket bound to its port but not listening, so the port stays taken (a
// closed server's port may be given to the next server a test starts).
type Refuser struct {
	URL string // http://127.0.0.1:PORT
	fd  int
}

// Refusing returns a new Refuser; Close frees its port.
func Refusing() (*Refuser, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind 127.0.0.1:0: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	return &Refuser{URL: fmt.Sprintf("http://127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port), fd: fd}, nil
}

// Close frees the port.
func (r *Refuser) Close() { unix.Close(r.fd) }
