// Command latencyd is the latency-model HTTP server of scripts/bench.sh: a
// crawl of many hosts over a network with a round trip, on one machine.
//
// Usage:
//
//	latencyd serve -hosts N [-live L] [-rtt 20ms] [-port P] [-tls -ca FILE]
//	               [-ready FILE] [-stats FILE] [-timeout 2h] [-cpuprofile FILE]
//	latencyd urls  -hosts N [-live L] -urls M -port P [-scheme http|https] [-which all|live|dead]
//	latencyd verify -urls FILE -dir DIR
//
// Hosts. Host i of N is the loopback address hostAddr(i) (127.1.0.1,
// 127.1.0.2, …, 254 per /24, never .0 or .255: all of 127.0.0.0/8 is local on
// Linux), every one on the same port. With -live L < N only L of them,
// spread evenly, have a listener; a connection to any other one is refused by
// the kernel at once (RST), as a dead host's would be. One listening socket
// per live host: binding 10,000 of them takes well under a second here, and
// a single wildcard socket cannot refuse some addresses and not others.
//
// Latency. Every connection waits one round trip (-rtt) before the server
// reads from it (the TCP handshake), and every time the server writes after
// it has read (a turn of the conversation: a response, or a TLS handshake
// flight) it first waits one round trip. A plain request on a new connection
// therefore costs the client 2 round trips, a TLS one 3 (TLS 1.3), and one on
// a kept-alive connection 1. Keep-alive is honoured (HTTP/1.1 only: no h2).
//
// Bodies. GET /d/NAME answers 200 with 1–64 KiB that depend only on NAME (a
// slice of a fixed pseudo-random block at an offset and of a length given by
// NAME's FNV-1a hash), so `latencyd verify` can check any tool's output from
// the file names alone. Anything else is 404.
//
// TLS. With -tls the server makes a CA at start, writes its certificate
// (PEM) to -ca FILE for the clients (SSL_CERT_FILE, --cacert,
// --ca-certificate), and signs a certificate for each host's IP address when
// that host is first contacted.
//
// Statistics ("name value" lines: seq, conns, open, max_open,
// max_open_per_host, requests, bytes, tls_handshakes, tls_resumed,
// not_found, live_hosts, cpu_s, uptime_s; counts since start, maxima since
// the last reset) are written to -stats FILE, atomically, on SIGUSR1 and at
// exit; SIGUSR2 writes them and then resets the two maxima (a benchmark
// sends it before each run). seq counts the writes, so a reader that sent a
// signal waits for it to grow. -ready FILE receives
// the port once every listener is bound. The server exits 0 on SIGTERM or
// SIGINT, and after -timeout whatever happens.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: latencyd serve|urls|verify [flags] (latencyd CMD -h for each)")
		os.Exit(2)
	}
	var code int
	switch os.Args[1] {
	case "serve":
		code = serveMain(os.Args[2:])
	case "urls":
		code = urlsMain(os.Args[2:], os.Stdout)
	case "verify":
		code = verifyMain(os.Args[2:], os.Stdout)
	default:
		fmt.Fprintf(os.Stderr, "latencyd: unknown command %q: want serve, urls or verify\n", os.Args[1])
		code = 2
	}
	os.Exit(code)
}

// ---- hosts and bodies: shared by serve, urls and verify ----

// maxHosts is how many addresses hostAddr can give (127.1.0.0/16 up to 127.255.255.0/24).
const maxHosts = 255 * 256 * 254

// hostAddr is the loopback address of host i: 127.A.B.C with C in 1..254.
func hostAddr(i int) netip.Addr {
	a := 1 + i/(254*256)
	b := (i / 254) % 256
	c := 1 + i%254
	return netip.AddrFrom4([4]byte{127, byte(a), byte(b), byte(c)})
}

// isLive reports whether host i of n has a listener when live of them do:
// exactly live hosts, spread evenly (one in each run of n/live), host 0
// among them.
func isLive(i, n, live int) bool {
	return i*live%n < live
}

const (
	minBody   = 1 << 10
	maxBody   = 64 << 10
	blockSize = 1 << 20
)

// block is the pseudo-random data every body is a slice of (fixed seed:
// server and verifier agree without talking).
var block = func() []byte {
	r := mrand.New(mrand.NewPCG(0x6c6174656e6379, 0x64))
	b := make([]byte, blockSize+maxBody)
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for k := 0; k < 8; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}()

// body is the content served for a file named name.
func body(name string) []byte {
	h := fnv.New64a()
	io.WriteString(h, name)
	s := h.Sum64()
	size := minBody + int(s%uint64(maxBody-minBody+1))
	off := int((s >> 24) % blockSize)
	return block[off : off+size]
}

// ---- urls ----

func urlsMain(args []string, stdout io.Writer) int {
	fs := flag.NewFlagSet("latencyd urls", flag.ContinueOnError)
	hosts := fs.Int("hosts", 1000, "hosts")
	live := fs.Int("live", 0, "hosts with a listener (0: all)")
	n := fs.Int("urls", 100000, "URLs, spread evenly over the hosts, in a fixed shuffled order")
	port := fs.Int("port", 0, "the server's port")
	scheme := fs.String("scheme", "http", "http or https")
	which := fs.String("which", "all", "all, live (only URLs of live hosts) or dead")
	seed := fs.Uint64("seed", 1, "shuffle seed")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := checkHosts(*hosts, *live); err != nil {
		fmt.Fprintln(os.Stderr, "latencyd urls:", err)
		return 2
	}
	if *live == 0 {
		*live = *hosts
	}
	if *n < 1 || *port < 1 || *port > 65535 || (*scheme != "http" && *scheme != "https") ||
		(*which != "all" && *which != "live" && *which != "dead") || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "latencyd urls: want -urls ≥ 1, -port 1..65535, -scheme http|https, -which all|live|dead and no arguments")
		return 2
	}
	// URL k goes to host k mod hosts; the order of the lines is a fixed
	// permutation of k, so consecutive lines are on unrelated hosts.
	perm := make([]int32, *n)
	for i := range perm {
		perm[i] = int32(i)
	}
	r := mrand.New(mrand.NewPCG(*seed, 0x75726c73))
	r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	w := bufio.NewWriterSize(stdout, 1<<16)
	for _, k := range perm {
		h := int(k) % *hosts
		alive := isLive(h, *hosts, *live)
		if (*which == "live" && !alive) || (*which == "dead" && alive) {
			continue
		}
		fmt.Fprintf(w, "%s://%s:%d/d/f%07d.bin\n", *scheme, hostAddr(h), *port, k)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "latencyd urls: write stdout:", err)
		return 2
	}
	return 0
}

func checkHosts(hosts, live int) error {
	if hosts < 1 || hosts > maxHosts {
		return fmt.Errorf("-hosts %d: want 1..%d", hosts, maxHosts)
	}
	if live < 0 || live > hosts {
		return fmt.Errorf("-live %d: want 0 (all) up to -hosts (%d)", live, hosts)
	}
	return nil
}

// ---- verify ----

// verifyMain checks that DIR (walked recursively, any layout) holds exactly
// one file for each URL of the list, named as the URL's last segment (or
// ending in %2F and it), with the bytes the server sends for it, and
// nothing else.
func verifyMain(args []string, stdout io.Writer) int {
	fs := flag.NewFlagSet("latencyd verify", flag.ContinueOnError)
	list := fs.String("urls", "", "the URLs whose files must be there, one a line")
	dir := fs.String("dir", "", "the tool's output directory")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *list == "" || *dir == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: latencyd verify -urls FILE -dir DIR")
		return 2
	}
	msg, err := verify(*list, *dir)
	if err != nil {
		fmt.Fprintln(stdout, err)
		return 1
	}
	fmt.Fprintln(stdout, msg)
	return 0
}

func verify(list, dir string) (string, error) {
	f, err := os.Open(list)
	if err != nil {
		return "", err
	}
	defer f.Close()
	want := map[string]bool{} // name -> seen
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		u, err := url.Parse(sc.Text())
		if err != nil {
			return "", fmt.Errorf("%s:%d: %v", list, line, err)
		}
		name := path.Base(u.Path)
		if _, dup := want[name]; dup {
			return "", fmt.Errorf("%s:%d: name %s twice in the list", list, line, name)
		}
		want[name] = false
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	var files, total int64
	var bad []string
	note := func(s string) {
		if len(bad) < 5 {
			bad = append(bad, s)
		} else if len(bad) == 5 {
			bad = append(bad, "…")
		}
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		name := d.Name()
		if _, ok := want[name]; !ok {
			// A layout that escapes the URL's path into one file name (ckfetch
			// --layout flat: d%2Ff0000001.bin) still ends in the last segment.
			if i := strings.LastIndex(strings.ToUpper(name), "%2F"); i >= 0 {
				name = name[i+3:]
			}
		}
		seen, ok := want[name]
		switch {
		case !d.Type().IsRegular():
			note("not a regular file: " + rel)
			return nil
		case !ok:
			note("unexpected file: " + rel)
			return nil
		case seen:
			note("second copy: " + rel)
			return nil
		}
		want[name] = true
		got, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		total += int64(len(got))
		if want := body(name); !bytes.Equal(got, want) {
			note(fmt.Sprintf("wrong bytes: %s (%d bytes, want %d)", rel, len(got), len(want)))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if missing := int64(len(want)) - files; missing > 0 {
		note(fmt.Sprintf("%d of %d files missing", missing, len(want)))
	}
	if len(bad) > 0 {
		return "", errors.New(strings.Join(bad, "; "))
	}
	return fmt.Sprintf("%d files, %d bytes, all as served", files, total), nil
}

// ---- serve ----

type stats struct {
	conns, open, maxOpen atomic.Int64
	requests, bytes      atomic.Int64
	handshakes, resumed  atomic.Int64
	notFound             atomic.Int64
	maxPerHost           atomic.Int64
	perHost              map[netip.Addr]*atomic.Int64 // open connections, per live host
	seq                  int64                        // writes of the stats file (under mu)
	mu                   sync.Mutex
	start                time.Time
	statsFile            string
	liveHosts            int
}

// liveAddrs lists the addresses of the live hosts.
func liveAddrs(hosts, live int) []netip.Addr {
	var addrs []netip.Addr
	for i := 0; i < hosts; i++ {
		if isLive(i, hosts, live) {
			addrs = append(addrs, hostAddr(i))
		}
	}
	return addrs
}

func newStats(addrs []netip.Addr, statsFile string) *stats {
	st := &stats{start: time.Now(), statsFile: statsFile, perHost: map[netip.Addr]*atomic.Int64{}, liveHosts: len(addrs)}
	for _, a := range addrs {
		st.perHost[a] = new(atomic.Int64)
	}
	return st
}

func raise(max *atomic.Int64, v int64) {
	for {
		m := max.Load()
		if v <= m || max.CompareAndSwap(m, v) {
			return
		}
	}
}

func (s *stats) connState(c net.Conn, st http.ConnState) {
	var d int64
	switch st {
	case http.StateNew:
		d = 1
		s.conns.Add(1)
	case http.StateClosed, http.StateHijacked:
		d = -1
	default:
		return
	}
	raise(&s.maxOpen, s.open.Add(d))
	if ap, err := netip.ParseAddrPort(c.LocalAddr().String()); err == nil {
		if n := s.perHost[ap.Addr()]; n != nil {
			raise(&s.maxPerHost, n.Add(d))
		}
	}
}

// write puts the statistics in the stats file, atomically.
func (s *stats) write() error {
	if s.statsFile == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	var b strings.Builder
	for _, kv := range []struct {
		k string
		v int64
	}{
		{"seq", s.seq}, {"conns", s.conns.Load()}, {"open", s.open.Load()}, {"max_open", s.maxOpen.Load()},
		{"max_open_per_host", s.maxPerHost.Load()}, {"requests", s.requests.Load()}, {"bytes", s.bytes.Load()},
		{"tls_handshakes", s.handshakes.Load()}, {"tls_resumed", s.resumed.Load()}, {"not_found", s.notFound.Load()},
		{"live_hosts", int64(s.liveHosts)},
	} {
		fmt.Fprintf(&b, "%s %d\n", kv.k, kv.v)
	}
	fmt.Fprintf(&b, "cpu_s %.3f\nuptime_s %.3f\n", cpu.Seconds(), time.Since(s.start).Seconds())
	return writeAtomic(s.statsFile, b.String())
}

// delayConn is a connection seen through the network model: one round trip
// before the first read, and one before each write that follows a read.
type delayConn struct {
	net.Conn
	rtt    time.Duration
	first  sync.Once
	turned atomic.Bool
}

func (c *delayConn) Read(p []byte) (int, error) {
	c.first.Do(func() { time.Sleep(c.rtt) })
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.turned.Store(true)
	}
	return n, err
}

func (c *delayConn) Write(p []byte) (int, error) {
	if c.turned.Swap(false) {
		time.Sleep(c.rtt)
	}
	return c.Conn.Write(p)
}

// modelListener wraps every accepted connection in the network model, and
// in TLS when cfg is set.
type modelListener struct {
	net.Listener
	rtt time.Duration
	cfg *tls.Config
}

func (l *modelListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	var nc net.Conn = &delayConn{Conn: c, rtt: l.rtt}
	if l.cfg != nil {
		nc = tls.Server(nc, l.cfg)
	}
	return nc, nil
}

func serveMain(args []string) int {
	fs := flag.NewFlagSet("latencyd serve", flag.ContinueOnError)
	hosts := fs.Int("hosts", 1000, "hosts (loopback addresses 127.1.0.1 …)")
	live := fs.Int("live", 0, "hosts with a listener, spread evenly (0: all); the others refuse connections")
	rtt := fs.Duration("rtt", 20*time.Millisecond, "round trip added to every new connection and every response")
	port := fs.Int("port", 0, "port on every host (0: a free one below 32768, the same on every host)")
	useTLS := fs.Bool("tls", false, "serve HTTPS with a CA made at start")
	caFile := fs.String("ca", "", "with -tls: write the CA certificate (PEM) here")
	ready := fs.String("ready", "", "write the port here once every listener is bound")
	statsFile := fs.String("stats", "", "write statistics here on SIGUSR1 and at exit")
	timeout := fs.Duration("timeout", 2*time.Hour, "exit after this long in any case")
	cpuProfile := fs.String("cpuprofile", "", "write a pprof CPU profile of the whole run here (go tool pprof -top FILE)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "latencyd serve:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "latencyd serve:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "latencyd serve: "+format+"\n", a...)
		return 2
	}
	if err := checkHosts(*hosts, *live); err != nil {
		return fail("%v", err)
	}
	if *live == 0 {
		*live = *hosts
	}
	if fs.NArg() > 0 || *rtt < 0 || *timeout <= 0 || *port < 0 || *port > 65535 || (*useTLS && *caFile == "") {
		return fail("want no arguments, -rtt ≥ 0, -timeout > 0, -port 0..65535 and -ca FILE with -tls")
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && uint64(*live)+1024 > lim.Cur {
		return fail("-live %d needs %d descriptors for its listeners plus the connections, and the limit is %d (ulimit -n)", *live, *live, lim.Cur)
	}

	addrs := liveAddrs(*hosts, *live)
	st := newStats(addrs, *statsFile)

	var cfg *tls.Config
	if *useTLS {
		var err error
		if cfg, err = newTLS(*caFile, st); err != nil {
			return fail("%v", err)
		}
	}

	t0 := time.Now()
	lns, p, err := listenAll(addrs, *port)
	if err != nil {
		return fail("%v", err)
	}
	bindTime := time.Since(t0)

	srv := startServing(lns, *rtt, cfg, st)
	if *ready != "" {
		if err := writeAtomic(*ready, strconv.Itoa(p)+"\n"); err != nil {
			return fail("%v", err)
		}
	}
	fmt.Fprintf(os.Stderr, "latencyd: %d of %d hosts live on port %d (bound in %v), rtt %v, tls %v\n",
		len(addrs), *hosts, p, bindTime.Round(time.Millisecond), *rtt, *useTLS)

	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT)
	deadline := time.NewTimer(*timeout)
	code := 0
loop:
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGUSR1 || s == syscall.SIGUSR2 {
				if err := st.write(); err != nil {
					fmt.Fprintln(os.Stderr, "latencyd:", err)
				}
				if s == syscall.SIGUSR2 {
					st.maxOpen.Store(st.open.Load())
					st.maxPerHost.Store(0)
				}
				continue
			}
			break loop
		case <-deadline.C:
			fmt.Fprintf(os.Stderr, "latencyd: -timeout %v reached, exiting\n", *timeout)
			code = 1
			break loop
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	if err := st.write(); err != nil {
		fmt.Fprintln(os.Stderr, "latencyd:", err)
		return 1
	}
	return code
}

// startServing serves HTTP/1.1 (HTTPS with cfg) on every listener through
// the network model, counting in st.
func startServing(lns []net.Listener, rtt time.Duration, cfg *tls.Config, st *stats) *http.Server {
	var protos http.Protocols
	protos.SetHTTP1(true)
	srv := &http.Server{
		Handler:           http.HandlerFunc(st.serve),
		ConnState:         st.connState,
		ReadHeaderTimeout: time.Minute,
		IdleTimeout:       2 * time.Minute,
		Protocols:         &protos,
		// Handshake errors of clients that gave up are noise, not news.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	for _, ln := range lns {
		go srv.Serve(&modelListener{Listener: ln, rtt: rtt, cfg: cfg})
	}
	return srv
}

var octet = []string{"application/octet-stream"}

func (s *stats) serve(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/d/")
	if !ok || name == "" || strings.Contains(name, "/") || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		s.notFound.Add(1)
		http.NotFound(w, r)
		return
	}
	b := body(name)
	h := w.Header()
	h["Content-Type"] = octet
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	s.requests.Add(1)
	if r.Method == http.MethodHead {
		return
	}
	n, _ := w.Write(b)
	s.bytes.Add(int64(n))
}

// listenAll binds one listener per address, all on the same port: port, or
// when it is 0 a random free one in 20000..32767 (below Linux's ephemeral
// range, so no client's outgoing connection holds it).
func listenAll(addrs []netip.Addr, port int) ([]net.Listener, int, error) {
	try := func(p int) ([]net.Listener, error) {
		lns := make([]net.Listener, 0, len(addrs))
		for _, a := range addrs {
			ln, err := net.Listen("tcp4", netip.AddrPortFrom(a, uint16(p)).String())
			if err != nil {
				for _, l := range lns {
					l.Close()
				}
				return nil, err
			}
			lns = append(lns, ln)
		}
		return lns, nil
	}
	if port != 0 {
		lns, err := try(port)
		return lns, port, err
	}
	var err error
	for range 20 {
		p := 20000 + mrand.IntN(12768)
		var lns []net.Listener
		if lns, err = try(p); err == nil {
			return lns, p, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, 0, fmt.Errorf("no port free on all %d addresses: %w", len(addrs), err)
}

// newTLS makes a CA, writes its certificate to caFile, and returns a server
// config that signs a certificate for each local IP address on first use.
func newTLS(caFile string, st *stats) (*tls.Config, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "latencyd test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))); err != nil {
		return nil, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	var certs sync.Map // netip.Addr -> *tls.Certificate
	var serial atomic.Int64
	serial.Store(1)
	get := func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		ap, err := netip.ParseAddrPort(hello.Conn.LocalAddr().String())
		if err != nil {
			return nil, err
		}
		a := ap.Addr()
		if c, ok := certs.Load(a); ok {
			return c.(*tls.Certificate), nil
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial.Add(1)),
			Subject:      pkix.Name{CommonName: a.String()},
			IPAddresses:  []net.IP{a.AsSlice()},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(47 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &leafKey.PublicKey, caKey)
		if err != nil {
			return nil, err
		}
		c := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: leafKey}
		actual, _ := certs.LoadOrStore(a, c)
		return actual.(*tls.Certificate), nil
	}
	return &tls.Config{
		GetCertificate: get,
		NextProtos:     []string{"http/1.1"},
		MinVersion:     tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			st.handshakes.Add(1)
			if cs.DidResume {
				st.resumed.Add(1)
			}
			return nil
		},
	}, nil
}

// writeAtomic writes data to a temporary file beside path and renames it
// into place, so a reader sees the old content or the new, never half.
func writeAtomic(path, data string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
