package download_test

// The lean HTTP/1.1 client against servers written byte by byte, each
// doing what net/http's Transport copes with and a hand-made client could
// get wrong.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/download"
	"github.com/ck-tools/ck/lib/durable"
)

// rawServer accepts connections on 127.0.0.1 and serves each with serve,
// which is given the connection's number (from 0), a reader of its
// requests and the connection itself. It counts the connections.
type rawServer struct {
	url   string
	mu    sync.Mutex
	conns int
	open  []net.Conn
}

func newRawServer(t *testing.T, serve func(n int, br *bufio.Reader, c net.Conn)) *rawServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{url: "http://" + l.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		s.mu.Lock()
		for _, c := range s.open {
			c.Close() // ends the handlers that wait for a request
		}
		s.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			n := s.conns
			s.conns++
			s.open = append(s.open, c)
			s.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second)) // no test waits on a server forever
				serve(n, bufio.NewReader(c), c)
			}()
		}
	}()
	return s
}

func (s *rawServer) count() int { s.mu.Lock(); defer s.mu.Unlock(); return s.conns }

// readReq reads one request; false when the client closed the connection.
func readReq(br *bufio.Reader) (*http.Request, bool) {
	req, err := http.ReadRequest(br)
	return req, err == nil
}

// answerPath answers req with its own path as the body.
func answerPath(c net.Conn, req *http.Request) {
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.Path), req.URL.Path)
}

func fetchBody(c *http.Client, u string) (string, error) {
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func leanClient() *http.Client {
	return mustClient(download.NewClient(download.ClientOptions{ConnectTimeout: 5 * time.Second, StallTimeout: 10 * time.Second, Jobs: 1, PerHost: 1}))
}

// TestH1ReusesConnections: requests one after another to one host share
// one connection.
func TestH1ReusesConnections(t *testing.T) {
	s := newRawServer(t, func(_ int, br *bufio.Reader, c net.Conn) {
		for {
			req, ok := readReq(br)
			if !ok {
				return
			}
			answerPath(c, req)
		}
	})
	c := leanClient()
	for i := range 20 {
		path := fmt.Sprintf("/f%d", i)
		if got, err := fetchBody(c, s.url+path); err != nil || got != path {
			t.Fatalf("%s: %q, %v", path, got, err)
		}
	}
	if n := s.count(); n != 1 {
		t.Errorf("%d connections for 20 requests; want 1", n)
	}
}

// TestH1UnaskedBytes: a response longer than its Content-Length leaves
// bytes on the connection, at once or a little later; they are never read
// as the next answer: the connection is not used again.
func TestH1UnaskedBytes(t *testing.T) {
	for _, later := range []bool{false, true} {
		t.Run(fmt.Sprintf("later=%v", later), func(t *testing.T) {
			fake := "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nFAKE"
			read, sent := make(chan struct{}, 3), make(chan struct{}, 3)
			s := newRawServer(t, func(_ int, br *bufio.Reader, c net.Conn) {
				for {
					req, ok := readReq(br)
					if !ok {
						return
					}
					if !later {
						// In the answer's own write, so they come with it: sent
						// apart, they may come after the client has checked the
						// connection and sent the next request, when no client
						// can tell them from its answer (net/http cannot either).
						fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s%s", len(req.URL.Path), req.URL.Path, fake)
						continue
					}
					// Once the client has read the answer, while the
					// connection is idle; the client goes on once they are on
					// its socket (a write on loopback delivers before it
					// returns).
					answerPath(c, req)
					select {
					case <-read:
					case <-time.After(10 * time.Second): // the client failed
						return
					}
					io.WriteString(c, fake)
					sent <- struct{}{}
				}
			})
			c := leanClient()
			for _, path := range []string{"/a", "/b", "/c"} {
				if got, err := fetchBody(c, s.url+path); err != nil || got != path {
					t.Fatalf("%s: got %q, %v; want its own answer", path, got, err)
				}
				if later {
					read <- struct{}{}
					select {
					case <-sent:
					case <-time.After(10 * time.Second):
						t.Fatal("the server did not send its unasked bytes within 10 s")
					}
				}
			}
			if n := s.count(); n != 3 {
				t.Errorf("%d connections for 3 requests; want 3 (none reused after unasked bytes)", n)
			}
		})
	}
}

// TestH1ServerClosedIdle: a server that closes each connection after one
// answer, without saying so: the next request gets a connection of its
// own, whether the close was seen before the request (the peek) or only
// when the request was sent on it.
func TestH1ServerClosedIdle(t *testing.T) {
	for _, quick := range []bool{false, true} {
		t.Run(fmt.Sprintf("seen=%v", !quick), func(t *testing.T) {
			closed := make(chan struct{}, 5)
			s := newRawServer(t, func(_ int, br *bufio.Reader, c net.Conn) {
				req, ok := readReq(br)
				if !ok {
					return
				}
				answerPath(c, req)
				if quick {
					// Close only once the next request has come: the client
					// finds out after sending it.
					readReq(br)
					return
				}
				// Closed before the client goes on: on loopback the close
				// is on the client's socket once Close returns.
				c.Close()
				closed <- struct{}{}
			})
			c := leanClient()
			for i := range 5 {
				path := fmt.Sprintf("/f%d", i)
				if got, err := fetchBody(c, s.url+path); err != nil || got != path {
					t.Fatalf("%s: %q, %v", path, got, err)
				}
				if !quick {
					select {
					case <-closed:
					case <-time.After(10 * time.Second):
						t.Fatal("the server did not close within 10 s")
					}
				}
			}
			if n := s.count(); n != 5 {
				t.Errorf("%d connections for 5 requests; want 5", n)
			}
		})
	}
}

// TestH1NewConnClosed: a new connection closed before any answer is the
// host's failure, not sent again on and on.
func TestH1NewConnClosed(t *testing.T) {
	s := newRawServer(t, func(_ int, br *bufio.Reader, c net.Conn) { readReq(br) })
	_, err := fetchBody(leanClient(), s.url+"/x")
	if err == nil || !download.ConnFailure(err) {
		t.Fatalf("got %v; want a connection failure", err)
	}
	if n := s.count(); n != 1 {
		t.Errorf("%d connections; want 1", n)
	}
}

// TestH1Answers: answers the lean client must read as net/http does.
func TestH1Answers(t *testing.T) {
	for _, tc := range []struct {
		name, answer, want string
		conns              int // for 3 requests
	}{
		{"1xx before the answer", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", 1},
		{"too many 1xx", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 6) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "error: more than 5 informational (1xx) answers before the response", 3},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3\r\n!!!\r\n0\r\n\r\n", "ok!!!", 1},
		{"Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", "ok", 3},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", 3},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", "ok", 1},
		{"204", "HTTP/1.1 204 No Content\r\n\r\n", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, func(_ int, br *bufio.Reader, c net.Conn) {
				for {
					if _, ok := readReq(br); !ok {
						return
					}
					io.WriteString(c, tc.answer)
					if tc.conns > 1 {
						return
					}
				}
			})
			c := leanClient()
			for i := range 3 {
				got, err := fetchBody(c, fmt.Sprintf("%s/f%d", s.url, i))
				if err != nil {
					got = "error: " + err.Error()
				}
				if got != tc.want && !(err != nil && strings.HasPrefix(tc.want, "error: ") && strings.HasSuffix(got, strings.TrimPrefix(tc.want, "error: "))) {
					t.Fatalf("request %d: %q, %v; want %q", i, got, err, tc.want)
				}
			}
			if n := s.count(); n != tc.conns {
				t.Errorf("%d connections for 3 requests; want %d", n, tc.conns)
			}
		})
	}
}

// TestH1ShortBody: a body that ends before its Content-Length is an
// error, and its connection is not used again.
func TestH1ShortBody(t *testing.T) {
	s := newRawServer(t, func(n int, br *bufio.Reader, c net.Conn) {
		if _, ok := readReq(br); !ok {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
	})
	_, err := fetchBody(leanClient(), s.url+"/x")
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v; want an unexpected EOF", err)
	}
}

// TestH1HeaderTimeout: headers that do not come within the stall timeout
// end the request with a timeout.
func TestH1HeaderTimeout(t *testing.T) {
	s := newRawServer(t, func(n int, br *bufio.Reader, c net.Conn) {
		readReq(br)
		io.Copy(io.Discard, br) // no answer, until the client gives up
	})
	c := mustClient(download.NewClient(download.ClientOptions{ConnectTimeout: 5 * time.Second, StallTimeout: 100 * time.Millisecond, Jobs: 1, PerHost: 1}))
	_, err := fetchBody(c, s.url+"/x")
	if err == nil || !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Fatalf("got %v; want a timeout awaiting the headers", err)
	}
}

// TestH1RequestBytes: the request on the wire is net/http's: Host,
// User-Agent, the headers set, nothing more.
func TestH1RequestBytes(t *testing.T) {
	got := make(chan string, 1)
	s := newRawServer(t, func(n int, br *bufio.Reader, c net.Conn) {
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		got <- head.String()
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	})
	req, _ := http.NewRequest(http.MethodGet, s.url+"/p?q=1", nil)
	req.Header.Set("User-Agent", "ck-test")
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := leanClient().Transport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := "GET /p?q=1 HTTP/1.1\r\nHost: " + strings.TrimPrefix(s.url, "http://") + "\r\nUser-Agent: ck-test\r\nAccept-Encoding: identity\r\n\r\n"
	if h := <-got; h != want {
		t.Errorf("request\n%q\nwant\n%q", h, want)
	}
}

// TestH1NotThroughProxy: with a proxy, a plain-http GET goes to the proxy,
// in its absolute form, through net/http's Transport (the lean client has
// no proxy support): the origin is never contacted.
func TestH1NotThroughProxy(t *testing.T) {
	origin := newRawServer(t, func(_ int, br *bufio.Reader, c net.Conn) {
		if req, ok := readReq(br); ok {
			answerPath(c, req)
		}
	})
	seen := make(chan string, 4)
	proxy := newRawServer(t, func(_ int, br *bufio.Reader, c net.Conn) {
		for {
			req, ok := readReq(br)
			if !ok {
				return
			}
			seen <- req.RequestURI
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nproxied")
		}
	})
	c := mustClient(download.NewClient(download.ClientOptions{ConnectTimeout: 5 * time.Second, StallTimeout: 10 * time.Second, Jobs: 1, PerHost: 1, Proxy: proxy.url}))
	for _, path := range []string{"/a", "/b"} {
		if got, err := fetchBody(c, origin.url+path); err != nil || got != "proxied" {
			t.Fatalf("%s: %q, %v; want the proxy's answer", path, got, err)
		}
		if uri := <-seen; uri != origin.url+path {
			t.Errorf("the proxy got request-target %q; want the absolute URL %q", uri, origin.url+path)
		}
	}
	if n := origin.count(); n != 0 {
		t.Errorf("the origin got %d connections; want 0 (every request through the proxy)", n)
	}
}

// TestH1HeaderWaitStalls: through a Fetcher, the wait for headers that never
// come is ended by the attempt's stall timeout (the lean client then sets no
// deadline of its own: the client's header timeout here is far longer).
func TestH1HeaderWaitStalls(t *testing.T) {
	s := newRawServer(t, func(n int, br *bufio.Reader, c net.Conn) {
		readReq(br)
		io.Copy(io.Discard, br) // no answer, until the client gives up
	})
	const stall = 150 * time.Millisecond
	f := &download.Fetcher{
		Client:       mustClient(download.NewClient(download.ClientOptions{ConnectTimeout: 5 * time.Second, StallTimeout: time.Hour, Jobs: 1, PerHost: 1})),
		StallTimeout: stall,
		Dirs:         &durable.DirSyncer{},
	}
	start := time.Now()
	res := f.Fetch(context.Background(), s.url+"/x", "h", filepath.Join(t.TempDir(), "x"))
	if res.Status != download.Failed || res.Err == nil || !strings.Contains(res.Err.Error(), "stalled") {
		t.Fatalf("got %s (%v); want failed as stalled", res.Status, res.Err)
	}
	if took := time.Since(start); took < stall {
		t.Errorf("failed after %v; want at least the stall timeout %v", took, stall)
	}
}
