package download_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/download"
)

// countingServers starts n test servers (n hosts: distinct ports) that
// count the connections each accepts.
func countingServers(t *testing.T, n int) (urls []string, conns func(i int) int) {
	t.Helper()
	var mu sync.Mutex
	counts := make([]int, n)
	for i := range n {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
		srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				mu.Lock()
				counts[i]++
				mu.Unlock()
			}
		}
		srv.Start()
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	return urls, func(i int) int { mu.Lock(); defer mu.Unlock(); return counts[i] }
}

func get(t *testing.T, c *http.Client, u string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// TestPoolKeepsEachHostsConnections: requests that go round ten hosts, one
// at a time, reuse one connection per host: no cap over all hosts (which
// was 2 × jobs) takes a host's connection away for another's while the
// open connections are within MaxOpen.
func TestPoolKeepsEachHostsConnections(t *testing.T) {
	const hosts, rounds = 10, 20
	urls, conns := countingServers(t, hosts)
	c := mustClient(download.NewClient(download.ClientOptions{ConnectTimeout: 5 * time.Second, Jobs: 1, PerHost: 4}))
	for r := range rounds {
		for _, u := range urls {
			get(t, c, fmt.Sprintf("%s/r%d", u, r))
		}
	}
	for i := range hosts {
		if got := conns(i); got != 1 {
			t.Errorf("host %d: %d connections for %d requests; want 1", i, got, rounds)
		}
	}
}

// TestPoolMaxOpen: over more hosts than MaxOpen, the open connections stay
// within it, less the files open: the least recently used hosts' idle
// connections are closed.
func TestPoolMaxOpen(t *testing.T) {
	const jobs, hosts = 2, 40
	urls, _ := countingServers(t, hosts)
	c := mustClient(download.NewClient(download.ClientOptions{ConnectTimeout: 5 * time.Second, Jobs: jobs, PerHost: 4}))
	pool := c.Transport.(*download.Pool)
	if got, want := pool.MaxOpen(), 2*jobs+download.SpareConns; got != want {
		t.Fatalf("MaxOpen %d; want 2 × -j + SpareConns = %d", got, want)
	}
	most := 0
	for r := range 3 {
		for _, u := range urls {
			get(t, c, fmt.Sprintf("%s/r%d", u, r))
			most = max(most, pool.Stats().Open)
		}
	}
	if most > pool.MaxOpen() {
		t.Errorf("%d connections open at once; want at most MaxOpen %d", most, pool.MaxOpen())
	}
	// Files open share the descriptors: each one is a connection less.
	files := jobs
	pool.Files = func() int { return files }
	most = 0
	for _, u := range urls {
		get(t, c, u+"/files")
		most = max(most, pool.Stats().Open)
	}
	if want := pool.MaxOpen() - files; most > want {
		t.Errorf("with %d files open, %d connections open at once; want at most MaxOpen - files = %d", files, most, want)
	}
	if st := pool.Stats(); st.Hosts > pool.MaxOpen() {
		t.Errorf("the pool holds %d hosts; want no more than its %d connections", st.Hosts, pool.MaxOpen())
	}
}

// TestPoolRoom: a file about to be opened (counted by Files) makes Room
// close an idle connection when the pool is full, before any request ends
// or dial starts: the descriptors never pass MaxOpen between two requests.
func TestPoolRoom(t *testing.T) {
	const jobs, hosts = 2, 40
	urls, _ := countingServers(t, hosts)
	c := mustClient(download.NewClient(download.ClientOptions{ConnectTimeout: 5 * time.Second, Jobs: jobs, PerHost: 4}))
	pool := c.Transport.(*download.Pool)
	files := 0
	pool.Files = func() int { return files }
	for _, u := range urls {
		get(t, c, u)
	}
	if got := pool.Stats().Open; got != pool.MaxOpen() {
		t.Fatalf("%d connections open after %d hosts; want the pool full, MaxOpen %d", got, hosts, pool.MaxOpen())
	}
	pool.Room() // nothing to make room for
	if got := pool.Stats().Open; got != pool.MaxOpen() {
		t.Fatalf("Room with no file open left %d connections; want all MaxOpen %d kept", got, pool.MaxOpen())
	}
	for files = 1; files <= 3; files++ {
		pool.Room()
		if got, want := pool.Stats().Open, pool.MaxOpen()-files; got != want {
			t.Errorf("Room with %d files counted: %d connections open; want MaxOpen - files = %d", files, got, want)
		}
	}
}

// TestPoolCountsDials: a connection being dialled counts against MaxOpen
// (its socket is a descriptor): dials that start while the pool is full of
// idle connections close idle ones first. (Counted only once connected,
// 256 dials to hosts that do not answer went beyond the descriptors.)
func TestPoolCountsDials(t *testing.T) {
	const jobs, slow = 2, 4
	urls, _ := countingServers(t, 2*jobs+download.SpareConns+slow)
	idle, blocked := urls[:len(urls)-slow], urls[len(urls)-slow:]
	slowHosts := map[string]bool{}
	for _, u := range blocked {
		slowHosts[strings.TrimPrefix(u, "http://")] = true
	}
	gate := make(chan struct{})
	var dialing sync.WaitGroup
	dialing.Add(slow)
	d := &net.Dialer{}
	template := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if slowHosts[addr] {
			dialing.Done()
			<-gate
		}
		return d.DialContext(ctx, network, addr)
	}}
	pool := download.NewPool(template, jobs, 4)
	c := &http.Client{Transport: pool}
	for _, u := range idle {
		get(t, c, u+"/idle")
	}
	if st := pool.Stats(); st.Open != pool.MaxOpen() {
		t.Fatalf("%d connections open; want MaxOpen %d, all idle", st.Open, pool.MaxOpen())
	}
	done := make(chan error, slow)
	for _, u := range blocked {
		go func() {
			resp, err := c.Get(u + "/slow")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			done <- err
		}()
	}
	dialing.Wait()
	if st := pool.Stats(); st.Open+slow > pool.MaxOpen() {
		t.Errorf("%d connections open beside %d being dialled; want at most MaxOpen %d in all", st.Open, slow, pool.MaxOpen())
	}
	close(gate)
	for range slow {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestPoolTrimKeepsBusyConns: when the open connections pass MaxOpen, the
// pool closes an idle connection of the least recently used host and
// leaves its busy ones alone: once their requests end they serve that
// host's next requests. (Transport.CloseIdleConnections on a host with
// requests in flight also made net/http close each busy connection as its
// request ended: the host dialled again for every one.)
func TestPoolTrimKeepsBusyConns(t *testing.T) {
	const busy = 3
	hold := make(chan struct{})
	var inHandler sync.WaitGroup
	inHandler.Add(busy)
	var mu sync.Mutex
	aConns := 0
	a := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			inHandler.Done()
			<-hold
		}
		io.WriteString(w, "ok")
	}))
	a.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			mu.Lock()
			aConns++
			mu.Unlock()
		}
	}
	a.Start()
	t.Cleanup(a.Close)
	t.Cleanup(func() {
		select {
		case <-hold:
		default:
			close(hold)
		}
	})

	c := mustClient(download.NewClient(download.ClientOptions{ConnectTimeout: 5 * time.Second, Jobs: 1, PerHost: busy + 1}))
	pool := c.Transport.(*download.Pool)
	errs := make(chan error, busy)
	for range busy {
		go func() {
			resp, err := c.Get(a.URL + "/hold")
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	inHandler.Wait()
	get(t, c, a.URL+"/quick") // a fourth connection, idle now
	// Other hosts, one idle connection each, until the pool passes MaxOpen
	// and trims: host A is the least recently used one with an idle
	// connection.
	others, _ := countingServers(t, pool.MaxOpen()-busy)
	for _, u := range others {
		get(t, c, u+"/x")
	}
	if st := pool.Stats(); st.Open > pool.MaxOpen() {
		t.Fatalf("%d connections open; want at most MaxOpen %d", st.Open, pool.MaxOpen())
	}
	close(hold)
	for range busy {
		if err := <-errs; err != nil {
			t.Fatalf("a held request: %v", err)
		}
	}
	for i := range busy {
		get(t, c, fmt.Sprintf("%s/again%d", a.URL, i))
	}
	mu.Lock()
	defer mu.Unlock()
	if aConns != busy+1 {
		t.Errorf("host A accepted %d connections; want %d: its %d busy ones serve its next requests", aConns, busy+1, busy)
	}
}

// TestPoolForgetsDeadHosts: a host whose connections are refused keeps no
// state once its request has failed (net/http's Transport would keep a
// queue for each), and each failure is told as a connection failure.
func TestPoolForgetsDeadHosts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr)
	l.Close() // nothing listens there now
	c := mustClient(download.NewClient(download.ClientOptions{ConnectTimeout: 5 * time.Second, Jobs: 4, PerHost: 4}))
	pool := c.Transport.(*download.Pool)
	var mu sync.Mutex
	told := map[string]error{}
	pool.OnConn = func(host string, err error) { mu.Lock(); told[host] = err; mu.Unlock() }
	const n = 100
	for i := range n {
		u := fmt.Sprintf("http://127.0.0.1:%d/f%d", addr.Port, i)
		if _, err := c.Get(u); err == nil {
			t.Fatalf("%s: no error from a port nobody listens on", u)
		}
	}
	if st := pool.Stats(); st.Hosts != 0 || st.Open != 0 {
		t.Errorf("after %d failed requests the pool holds %d hosts, %d connections; want none", n, st.Hosts, st.Open)
	}
	key := fmt.Sprintf("127.0.0.1:%d", addr.Port)
	if err := told[key]; err == nil || !download.ConnFailure(err) {
		t.Errorf("told %v for %s; want a connection failure", err, key)
	}
}

// TestPoolRelease: a released host's idle connections are closed (after
// the grace, here zero) and the host is forgotten; a host used again
// before the grace ends keeps them.
func TestPoolRelease(t *testing.T) {
	download.SetReleaseGrace(t, 0)
	urls, _ := countingServers(t, 2)
	c := mustClient(download.NewClient(download.ClientOptions{ConnectTimeout: 5 * time.Second, Jobs: 4, PerHost: 4}))
	pool := c.Transport.(*download.Pool)
	get(t, c, urls[0]+"/a")
	get(t, c, urls[1]+"/a")
	if st := pool.Stats(); st.Hosts != 2 || st.Open != 2 {
		t.Fatalf("pool holds %d hosts and %d connections; want 2 and 2", st.Hosts, st.Open)
	}
	pool.Release(strings.TrimPrefix(urls[0], "http://"))
	for deadline := time.Now().Add(10 * time.Second); pool.Stats().Hosts != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the released host is still held: %+v", pool.Stats())
		}
	}
	if st := pool.Stats(); st.Open != 1 {
		t.Errorf("%d connections open; want the other host's one", st.Open)
	}
}

// TestConnFailure: which errors say the host gave no usable connection.
func TestConnFailure(t *testing.T) {
	refused := func() error {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		a := l.Addr().String()
		l.Close()
		_, err := http.Get("http://" + a + "/")
		return err
	}()
	closing := func() error {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		_, err := (&http.Client{Transport: &http.Transport{}}).Get("http://" + l.Addr().String() + "/")
		return err
	}()
	slow := func() error {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}))
		defer srv.Close()
		c := &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 10 * time.Millisecond}}
		_, err := c.Get(srv.URL)
		return err
	}()
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"refused", refused, true},
		{"closed before any answer", closing, true},
		{"DNS", &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}, true},
		{"unreachable", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.EHOSTUNREACH}, true},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"TLS handshake timeout", errors.New("net/http: TLS handshake timeout"), true},
		{"out of descriptors (ours, not the host's)", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", syscall.EMFILE)}, false},
		{"no answer in time", slow, false},
		{"cancelled", context.Canceled, false},
		{"HTTP status", errors.New("HTTP 503 Service Unavailable"), false},
	} {
		if tc.err == nil {
			t.Fatalf("%s: no error to classify", tc.name)
		}
		if got := download.ConnFailure(tc.err); got != tc.want {
			t.Errorf("%s (%v): ConnFailure %v; want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
