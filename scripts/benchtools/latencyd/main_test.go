package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestIsLiveSpreadsExactlyLive(t *testing.T) {
	for _, tc := range []struct{ n, live int }{{10, 10}, {10, 1}, {100000, 10000}, {1000, 7}, {7, 3}} {
		t.Run(fmt.Sprintf("%d_of_%d", tc.live, tc.n), func(t *testing.T) {
			got, longestDead, run := 0, 0, 0
			for i := 0; i < tc.n; i++ {
				if isLive(i, tc.n, tc.live) {
					got++
					run = 0
				} else if run++; run > longestDead {
					longestDead = run
				}
			}
			if got != tc.live || !isLive(0, tc.n, tc.live) {
				t.Errorf("%d live hosts (host 0 live: %v), want %d with host 0", got, isLive(0, tc.n, tc.live), tc.live)
			}
			if want := tc.n / tc.live; longestDead > want {
				t.Errorf("a run of %d dead hosts, want at most %d (spread evenly)", longestDead, want)
			}
		})
	}
}

func TestHostAddrDistinctLoopback(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200000; i++ {
		a := hostAddr(i)
		b := a.As4()
		if !a.IsLoopback() || b[3] == 0 || b[3] == 255 {
			t.Fatalf("hostAddr(%d) = %v: want a loopback address not ending in .0 or .255", i, a)
		}
		if seen[a.String()] {
			t.Fatalf("hostAddr(%d) = %v twice", i, a)
		}
		seen[a.String()] = true
	}
}

func TestBodyDeterministicAndSized(t *testing.T) {
	sizes := map[int]bool{}
	for i := 0; i < 1000; i++ {
		name := fmt.Sprintf("f%07d.bin", i)
		b := body(name)
		if len(b) < minBody || len(b) > maxBody {
			t.Fatalf("body(%s) has %d bytes, want %d..%d", name, len(b), minBody, maxBody)
		}
		if !bytes.Equal(b, body(name)) {
			t.Fatalf("body(%s) differs between two calls", name)
		}
		sizes[len(b)] = true
	}
	if len(sizes) < 900 {
		t.Errorf("%d distinct sizes over 1000 names, want them spread over 1-64 KiB", len(sizes))
	}
}

// serveForTest serves live of hosts on a free port through the model, and
// returns the port and the statistics.
func serveForTest(t *testing.T, hosts, live int, rtt time.Duration, cfg *tls.Config) (int, *stats) {
	t.Helper()
	addrs := liveAddrs(hosts, live)
	st := newStats(addrs, "")
	lns, port, err := listenAll(addrs, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServing(lns, rtt, cfg, st)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return port, st
}

func get(t *testing.T, c *http.Client, u string) ([]byte, time.Duration) {
	t.Helper()
	t0 := time.Now()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %v %v", u, resp.Status, err)
	}
	return b, time.Since(t0)
}

// The model's promises, as lower bounds only: a request on a new connection
// waits 2 round trips, one on a kept-alive connection 1, and a host without a
// listener refuses at once.
func TestServeRoundTripsKeepAliveAndDeadHosts(t *testing.T) {
	const rtt = 40 * time.Millisecond
	port, st := serveForTest(t, 4, 2, rtt, nil)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer c.CloseIdleConnections()
	u := fmt.Sprintf("http://%s:%d/d/f0000001.bin", hostAddr(0), port)
	b, d := get(t, c, u)
	if !bytes.Equal(b, body("f0000001.bin")) {
		t.Errorf("body of %s differs from body(f0000001.bin)", u)
	}
	if d < 2*rtt {
		t.Errorf("first request took %v, want at least 2 round trips (%v)", d, 2*rtt)
	}
	for i := 0; i < 3; i++ {
		if _, d := get(t, c, u); d < rtt {
			t.Errorf("kept-alive request took %v, want at least 1 round trip (%v)", d, rtt)
		}
	}
	if n, r := st.conns.Load(), st.requests.Load(); n != 1 || r != 4 {
		t.Errorf("server saw %d connections and %d requests, want 1 and 4 (keep-alive)", n, r)
	}
	if isLive(1, 4, 2) {
		t.Fatal("host 1 of 4 is live with 2 live: the test needs a dead one")
	}
	_, err := net.Dial("tcp", netip.AddrPortFrom(hostAddr(1), uint16(port)).String())
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial of a dead host: %v, want connection refused", err)
	}
	resp, err := c.Get(fmt.Sprintf("http://%s:%d/other", hostAddr(0), port))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /other: %s, want 404", resp.Status)
	}
}

func TestServeTLSWithItsCA(t *testing.T) {
	const rtt = 40 * time.Millisecond
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	st0 := newStats(nil, "")
	cfg, err := newTLS(caFile, st0)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := serveForTest(t, 3, 3, rtt, cfg)
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer c.CloseIdleConnections()
	for h := 0; h < 3; h++ {
		u := fmt.Sprintf("https://%s:%d/d/f%07d.bin", hostAddr(h), port, h)
		b, d := get(t, c, u)
		if !bytes.Equal(b, body(fmt.Sprintf("f%07d.bin", h))) {
			t.Errorf("body of %s differs", u)
		}
		if d < 3*rtt {
			t.Errorf("first TLS request to host %d took %v, want at least 3 round trips (%v)", h, d, 3*rtt)
		}
	}
	if n := st0.handshakes.Load(); n != 3 {
		t.Errorf("%d TLS handshakes counted, want 3", n)
	}
	// A client without the CA is refused the handshake.
	_, err = (&http.Client{}).Get(fmt.Sprintf("https://%s:%d/d/x", hostAddr(0), port))
	var uerr x509.UnknownAuthorityError
	if !errors.As(err, &uerr) {
		t.Errorf("GET without the CA: %v, want an unknown authority error", err)
	}
}

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "urls.txt")
	out := filepath.Join(dir, "out")
	names := []string{"f0000001.bin", "f0000002.bin", "f0000003.bin"}
	var urls strings.Builder
	for _, n := range names {
		fmt.Fprintf(&urls, "http://127.1.0.1:1/d/%s\n", n)
	}
	if err := os.WriteFile(list, []byte(urls.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(rel string, b []byte) {
		p := filepath.Join(out, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("127.1.0.1:1/d/"+names[0], body(names[0]))
	write(names[1], body(names[1]))
	write("http/127.1.0.1%3A1/d%2F"+names[2], body(names[2]))
	if msg, err := verify(list, out); err != nil || !strings.HasPrefix(msg, "3 files") {
		t.Fatalf("verify of a right tree, flat and escaped layout: %q, %v; want 3 files", msg, err)
	}
	for _, tc := range []struct {
		name, want string
		change     func()
	}{
		{"wrong bytes", "wrong bytes", func() { write(names[1], append([]byte{'x'}, body(names[1])[1:]...)) }},
		{"temporary file", "unexpected file", func() { write(names[1]+".part", nil) }},
		{"second copy", "second copy", func() { write("b/"+names[1], body(names[1])) }},
		{"missing", "1 of 3 files missing", func() { os.Remove(filepath.Join(out, names[1])) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.RemoveAll(out)
			write(names[0], body(names[0]))
			write(names[1], body(names[1]))
			write(names[2], body(names[2]))
			tc.change()
			_, err := verify(list, out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("verify: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
