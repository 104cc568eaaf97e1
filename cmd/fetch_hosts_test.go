package cmd_test

// Crawl scale, as a real ckfetch process shows it: connections reused per
// host, memory and descriptors bounded whatever the number of hosts, and
// hosts that refuse connections given up after a bounded number of them.
// Every bound is a count (connections, attempts, KiB), never a time.

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// loopback returns the i-th of many distinct loopback addresses,
// 127.1.0.1 and up, skipping the .0 and .255 ends of each /24 (Linux
// answers on all of 127.0.0.0/8).
func loopback(i int) string {
	i = i/254*256 + i%254 + 1
	return fmt.Sprintf("127.%d.%d.%d", 1+i>>16, (i>>8)&255, i&255)
}

// deadPort returns a TCP port on which nothing listens on any address, and
// nothing can start to while the test runs: a socket bound to it on
// 0.0.0.0 that never listens holds it, so a connect to 127.x.y.z:PORT is
// refused.
func deadPort(t *testing.T) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	port := sa.(*unix.SockaddrInet4).Port
	if c, err := net.Dial("tcp", net.JoinHostPort(loopback(7), fmt.Sprint(port))); err == nil {
		c.Close()
		t.Skipf("a connect to %s:%d succeeded: this system does not refuse on 127.0.0.0/8", loopback(7), port)
	}
	return port
}

// deadLines writes n lines, one per distinct refusing host, into dir/urls
// and returns it open for reading.
func deadLines(t *testing.T, dir string, n, port int) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "urls"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	w := bufio.NewWriter(f)
	for i := range n {
		fmt.Fprintf(w, "http://%s:%d/f%d\n", loopback(i), port, i)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFetchDeadHostsMemory: ckfetch's memory does not grow with the number
// of distinct hosts it has seen: its peak RSS over 100,000 hosts that all
// refuse connections stays within 1.25 times its peak over 1,000. Without
// -race only (scripts/test.sh runs it so): the race detector's own memory
// grows with the work done.
func TestFetchDeadHostsMemory(t *testing.T) {
	if raceBuild() {
		t.Skip("not under -race: the race detector's memory grows with the work (scripts/test.sh runs this test without -race)")
	}
	few, many := 1_000, 100_000
	if testing.Short() {
		many = 20_000
	}
	const factor = 1.25
	port := deadPort(t)
	var kib [2]int64
	for i, n := range []int{few, many} {
		dir := shmDir(t)
		stdin := deadLines(t, dir, n, port)
		p := startFetch(t, dir, stdin, "-q", "-d", "out", "--retries", "0", "-j", "16", "--window", "1000", "--failed", "failed.txt")
		var peak atomic.Int64
		polled := make(chan struct{})
		go func() {
			defer close(polled)
			status := fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)
			for !p.ended() {
				if k := vmHWM(status); k > peak.Load() {
					peak.Store(k)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		out := p.rest()
		st := how(p.wait(watchdog))
		<-polled
		if peak.Load() == 0 {
			t.Skip("no VmHWM in /proc/PID/status on this system")
		}
		failed := strings.Count(string(read(t, filepath.Join(dir, "failed.txt"))), "\n# ") + 1
		if st != "exit 1" || out != "" || failed != n {
			t.Fatalf("%d dead hosts: %s, stdout %q, %d lines in --failed; want exit 1, nothing echoed, %d failed", n, st, out, failed, n)
		}
		kib[i] = peak.Load()
	}
	t.Logf("peak RSS: %d KiB for %d dead hosts, %d KiB for %d", kib[0], few, kib[1], many)
	if float64(kib[1]) > factor*float64(kib[0]) {
		t.Errorf("peak RSS %d KiB for %d dead hosts is more than %.2f times the %d KiB for %d: memory grows with the hosts seen", kib[1], many, factor, kib[0], few)
	}
}

// hostFarm is a set of HTTP servers, one per loopback address, that count
// the TCP connections each accepts.
type hostFarm struct {
	srv   *http.Server
	addrs []string // host:port of each
	ca    string   // PEM file of the CA that signed their certificate, for TLS

	mu    sync.Mutex
	conns map[string]int // by local address
}

// newHostFarm starts n servers on distinct loopback addresses, plain or
// TLS, each answering every request with a small body.
func newHostFarm(t *testing.T, n int, useTLS bool) *hostFarm {
	t.Helper()
	f := &hostFarm{conns: map[string]int{}}
	f.srv = &http.Server{
		Handler:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") }),
		ErrorLog: log.New(io.Discard, "", 0), // handshakes cut short when ckfetch exits
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateNew {
				f.mu.Lock()
				f.conns[c.LocalAddr().String()]++
				f.mu.Unlock()
			}
		},
	}
	var ips []net.IP
	var ls []net.Listener
	for i := range n {
		l, err := net.Listen("tcp", loopback(i)+":0")
		if err != nil {
			t.Fatalf("listen on %s: %v", loopback(i), err)
		}
		ls = append(ls, l)
		f.addrs = append(f.addrs, l.Addr().String())
		ips = append(ips, net.ParseIP(loopback(i)))
	}
	if useTLS {
		cert, caFile := farmCert(t, ips)
		f.ca = caFile
		f.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		// HTTP/1.1 only: over HTTP/2 one connection carries every request
		// of a host, which would hide the handshakes a lost connection costs.
		f.srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	for _, l := range ls {
		l := l
		go func() {
			if useTLS {
				f.srv.ServeTLS(l, "", "")
			} else {
				f.srv.Serve(l)
			}
		}()
	}
	t.Cleanup(func() { f.srv.Close() })
	return f
}

// connsOf returns how many connections the server at addr accepted.
func (f *hostFarm) connsOf(addr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns[addr]
}

// farmCert returns a certificate for ips signed by a new CA, and the CA's
// PEM file.
func farmCert(t *testing.T, ips []net.IP) (tls.Certificate, string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ck test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "ck test hosts"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o666); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caFile
}

// TestFetchReuseConnections: over a whole run, each host receives about
// --per-host connections, not one per request, however the lines of the
// hosts are interleaved: 300 hosts (a host is an address:port, the key of
// the per-host limits; here each has its own 127.x address) with 50 URLs
// each, in round-robin order (the order in which any cache of idle
// connections smaller than the hosts loses them all), plain and over TLS
// with HTTP/1.1 (where each connection costs a handshake).
//
// A host is started cold about twice in such a run (once in the first
// window of lines, once after), and the second time it may take its four
// slots at once, plus a dial or two that net/http starts for a request
// that then gets a connection given back first: so the bound is twice
// --per-host for a host, and --per-host on average.
func TestFetchReuseConnections(t *testing.T) {
	const hosts, perHostURLs, perHost = 300, 50, 4
	for _, useTLS := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "tls"}[useTLS]
		t.Run(name, func(t *testing.T) {
			farm := newHostFarm(t, hosts, useTLS)
			scheme := map[bool]string{false: "http", true: "https"}[useTLS]
			var in strings.Builder
			for i := range perHostURLs {
				for _, a := range farm.addrs {
					fmt.Fprintf(&in, "%s://%s/f%d\n", scheme, a, i)
				}
			}
			dir := shmDir(t)
			if useTLS {
				t.Setenv("SSL_CERT_FILE", farm.ca) // the child's roots: the farm's CA only
			}
			p := startFetch(t, dir, strings.NewReader(in.String()),
				"-q", "-d", "out", "-j", "16", "--per-host", fmt.Sprint(perHost))
			out := p.rest()
			if st := how(p.wait(watchdog)); st != "exit 0" {
				t.Fatalf("ckfetch ended with %s; want exit 0\nstderr:\n%s", st, p.stderr)
			}
			if n := strings.Count(out, "\n"); n != hosts*perHostURLs {
				t.Fatalf("%d lines echoed; want %d", n, hosts*perHostURLs)
			}
			total, most := 0, 0
			hist := map[int]int{}
			for _, a := range farm.addrs {
				c := farm.connsOf(a)
				total += c
				most = max(most, c)
				hist[c]++
			}
			t.Logf("%s: %d connections for %d requests over %d hosts; at most %d on one host (hosts by connections: %v)", name, total, hosts*perHostURLs, hosts, most, hist)
			if most > 2*perHost {
				t.Errorf("a host received %d connections for its %d requests; want at most 2 × --per-host %d", most, perHostURLs, perHost)
			}
			if total > hosts*perHost {
				t.Errorf("%d connections for %d hosts; want at most --per-host %d per host", total, hosts, perHost)
			}
		})
	}
}
