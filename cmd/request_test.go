package cmd_test

// The request options of ckfetch (-H, --user-agent, netrc, --limit-rate,
// --ca-cert, --proxy) and --version, end to end: testdata/request/*.txtar
// against several servers, and Go tests for what a script cannot measure.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ck-tools/ck/lib/fetch"
	"github.com/ck-tools/ck/lib/fetchtest"
)

type requestServersKey struct{}

// requestServers are the servers of a request script.
type requestServers struct {
	server, other, tls *fetchtest.Server
	proxy              *testProxy
}

// TestRequestScripts runs testdata/request/*.txtar. Each script gets:
//
//	$SERVER     a fetchtest server on 127.0.0.1 (the one of requests, body, reset)
//	$OTHER      another on 127.0.0.1, another port: another host
//	$OTHERHOST  $OTHER reached as localhost (another host name, for netrc)
//	$TLS        an HTTPS fetchtest server (HTTP/2) whose CA is in $WORK/ca.pem
//	$PROXY      an HTTP proxy that forwards to 127.0.0.1 only (CONNECT too),
//	            at $PROXYADDR (127.0.0.1:PORT)
//
// and the commands header, hits and proxied below; reset resets them all.
func TestRequestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/request",
		RequireExplicitExec: true,
		UpdateScripts:       *update,
		Setup: func(env *testscript.Env) error {
			s := &requestServers{server: fetchtest.New(), other: fetchtest.New(), proxy: newTestProxy()}
			var err error
			if s.tls, err = fetchtest.NewTLS(); err != nil {
				return err
			}
			for _, c := range []func(){s.server.Close, s.other.Close, s.tls.Close, s.proxy.Close} {
				env.Defer(c)
			}
			env.Setenv("SERVER", s.server.URL)
			env.Setenv("OTHER", s.other.URL)
			env.Setenv("OTHERHOST", hostURL(s.other.URL, "localhost"))
			env.Setenv("TLS", s.tls.URL)
			env.Setenv("PROXY", s.proxy.URL)
			env.Setenv("PROXYADDR", s.proxy.Listener.Addr().String())
			env.Values[serverKey{}] = s.server
			env.Values[requestServersKey{}] = s
			return os.WriteFile(filepath.Join(env.WorkDir, "ca.pem"), s.tls.CAPEM, 0o666)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"requests": cmdRequests,
			"expand":   cmdExpand,
			"header":   cmdHeader,
			"hits":     cmdHits,
			"proxied":  cmdProxied,
			"reset": func(ts *testscript.TestScript, neg bool, args []string) {
				s := ts.Value(requestServersKey{}).(*requestServers)
				s.server.Reset()
				s.other.Reset()
				s.tls.Reset()
				s.proxy.reset()
			},
		},
	})
}

// hostURL is base (http://127.0.0.1:PORT) with its host written as host.
func hostURL(base, host string) string {
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	return "http://" + net.JoinHostPort(host, port)
}

func requestServer(ts *testscript.TestScript, name string) *fetchtest.Server {
	s := ts.Value(requestServersKey{}).(*requestServers)
	switch name {
	case "server":
		return s.server
	case "other":
		return s.other
	case "tls":
		return s.tls
	}
	ts.Fatalf("unknown server %q (server, other, tls)", name)
	return nil
}

// header SRV PATH NAME [REGEXP]: a request SRV (server, other, tls) got for
// PATH (path and query) had the header NAME (with a value matching REGEXP);
// NAME :proto is the protocol. Negated: SRV got requests for PATH and none
// of them had it, so the negation never passes on a request not made.
func cmdHeader(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 && len(args) != 4 {
		ts.Fatalf("usage: header SRV PATH NAME [REGEXP]")
	}
	got := requestServer(ts, args[0]).Received(args[1])
	if len(got) == 0 {
		ts.Fatalf("%s got no request for %s", args[0], args[1])
	}
	re := regexp.MustCompile(".*")
	if len(args) == 4 {
		re = regexp.MustCompile(args[3])
	}
	var seen []string
	found := false
	for _, r := range got {
		values, ok := r.Header[http.CanonicalHeaderKey(args[2])]
		if args[2] == ":proto" {
			values, ok = []string{r.Proto}, true
		}
		for _, v := range values {
			seen = append(seen, v)
			found = found || ok && re.MatchString(v)
		}
	}
	if found == neg {
		ts.Fatalf("%s: %d requests for %s, %s values %q; want %s%s matching %q", args[0], len(got), args[1], args[2], seen, map[bool]string{true: "none "}[neg], args[2], re)
	}
}

// hits SRV [PATH] N: SRV got exactly N requests (for PATH).
func cmdHits(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 && len(args) != 3 {
		ts.Fatalf("usage: hits SRV [PATH] N")
	}
	srv := requestServer(ts, args[0])
	got := srv.TotalRequests()
	if len(args) == 3 {
		got = srv.Requests(args[1])
	}
	want, err := strconv.Atoi(args[len(args)-1])
	ts.Check(err)
	if (got == want) == neg {
		ts.Fatalf("%s saw %d requests %v; want %s%d", args[0], got, args[1:len(args)-1], map[bool]string{true: "not "}[neg], want)
	}
}

// proxied REGEXP N: the proxy got exactly N requests whose request line
// ("GET http://…", "CONNECT host:port") matches REGEXP.
func cmdProxied(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: proxied REGEXP N")
	}
	re := regexp.MustCompile(args[0])
	lines := ts.Value(requestServersKey{}).(*requestServers).proxy.lines()
	got := 0
	for _, l := range lines {
		if re.MatchString(l) {
			got++
		}
	}
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	if (got == want) == neg {
		ts.Fatalf("the proxy got %d requests matching %q; want %s%d; all: %q", got, re, map[bool]string{true: "not "}[neg], want, lines)
	}
}

// testProxy is a forward HTTP proxy for tests: absolute-form requests and
// CONNECT tunnels, to 127.0.0.1 and localhost only, so nothing it does
// leaves the machine. It records each request line.
type testProxy struct {
	*httptest.Server
	mu  sync.Mutex
	log []string
	tr  *http.Transport
}

func newTestProxy() *testProxy {
	p := &testProxy{tr: &http.Transport{}} // no proxy of its own
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	return p
}

func (p *testProxy) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...)
}

func (p *testProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = nil
}

func (p *testProxy) Close() {
	p.Server.CloseClientConnections()
	p.Server.Close()
	p.tr.CloseIdleConnections()
}

func local(hostport string) bool {
	h, _, err := net.SplitHostPort(hostport)
	return err == nil && (h == "127.0.0.1" || h == "localhost")
}

func (p *testProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.log = append(p.log, r.Method+" "+r.RequestURI)
	p.mu.Unlock()
	if r.Method == http.MethodConnect {
		if !local(r.Host) {
			http.Error(w, "test proxy: local hosts only", http.StatusForbidden)
			return
		}
		up, err := net.DialTimeout("tcp", r.Host, 5*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			return
		}
		io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
		done := make(chan struct{})
		go func() { io.Copy(up, buf); up.(*net.TCPConn).CloseWrite(); close(done) }()
		io.Copy(conn, up)
		conn.Close()
		<-done
		up.Close()
		return
	}
	if !r.URL.IsAbs() || !local(r.URL.Host) {
		http.Error(w, "test proxy: absolute http URLs of local hosts only", http.StatusForbidden)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.Header.Del("Proxy-Connection")
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// TestFetchLimitRate: --limit-rate caps the bytes per second of all
// downloads together. Two files of 40 KiB each at 20k (20480 B/s) with -j 2
// take at least (80 KiB - one burst of 20 KiB) / 20 KiB/s = 3 s: a lower
// bound, which holds however slow the machine. Without the limit the same
// bytes take milliseconds.
func TestFetchLimitRate(t *testing.T) {
	t.Parallel()
	srv := fetchtest.New()
	defer srv.Close()
	dir := t.TempDir()
	list := fmt.Sprintf("%s/f/r1?size=40960\tr1\n%s/f/r2?size=40960\tr2\n", srv.URL, srv.URL)
	start := time.Now()
	code, _, stderr := mainFetch(t, list, "-q", "-j", "2", "-d", dir, "--limit-rate", "20k")
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("status %d\n%s", code, stderr)
	}
	const rate, total, burst = 20 << 10, 80 << 10, 20 << 10
	if low := time.Duration(float64(total-burst) / rate * float64(time.Second)); took < low {
		t.Errorf("80 KiB at --limit-rate 20k took %s; want at least %s", took, low)
	}
	for _, name := range []string{"r1", "r2"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(b, fetchtest.Body(name, 40960)) {
			t.Errorf("%s: %d bytes, err %v", name, len(b), err)
		}
	}
}

// mainFetch runs fetch.Main in this process with HOME set to an empty
// directory (no ~/.netrc).
func mainFetch(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = fetch.Main(context.Background(), append([]string{"--netrc-file", os.DevNull}, args...), strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// TestFetchSecretsStayOut: passwords in URLs, -H Authorization and Cookie
// values and netrc passwords never appear in stderr, in --report, or in the
// "# reason" lines of --failed, over successes, HTTP errors, redirects to
// another host, unreachable hosts and invalid URLs. (--failed copies each
// failed input line as it was read, so that it can be retried: only its
// reason lines are checked.) The redirect target of the second line
// carries a password of its own, which must not show in final_url either.
func TestFetchSecretsStayOut(t *testing.T) {
	t.Parallel()
	a, b := fetchtest.New(), fetchtest.New()
	defer a.Close()
	defer b.Close()
	dir := t.TempDir()
	netrc := filepath.Join(dir, "netrc")
	write(t, netrc, "machine 127.0.0.1 login nuser password NETRCSECRET\n")
	with := func(base, userinfo string) string { return strings.Replace(base, "http://", "http://"+userinfo+"@", 1) }
	dead := closedAddr(t)
	lines := []string{
		with(a.URL, "user:URLSECRET1") + "/f/ok?size=10",
		a.URL + "/redirect?to=" + with(b.URL, "u2:URLSECRET2") + "/status/404",
		with(a.URL, "user:URLSECRET3") + "/status/403",
		with(a.URL, "user:URLSECRET4") + "/status/500",
		with("http://"+dead, "user:URLSECRET5") + "/x",
		"http://user:URLSECRET6@127.0.0.1:badport/x",
		"http://user:URL SECRET7@127.0.0.1/x",
		"ftp://user:URLSECRET8@127.0.0.1/x",
	}
	report, failed := filepath.Join(dir, "report.jsonl"), filepath.Join(dir, "failed.txt")
	cmd := exec.Command("ckfetch", "-d", filepath.Join(dir, "out"), "--report", report, "--failed", failed,
		"--retries", "1", "--backoff", "1ms", "--connect-timeout", "200ms", "--netrc-file", netrc,
		"-H", "Authorization: Bearer HEADERSECRET1", "-H", "Cookie: session=HEADERSECRET2")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("ckfetch: %v; want exit 1\nstderr:\n%s", err, stderr.String())
	}
	// The report without its paths: a path is the name the input line
	// chose (a query is part of it), not a message; user information never
	// goes into one, which is checked on its own.
	var rep, paths strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(string(read(t, report))), "\n") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(l), &obj); err != nil {
			t.Fatalf("--report line %q: %v", l, err)
		}
		if obj["url"] == strings.Replace(lines[0], "user:URLSECRET1", "***", 1) && obj["status"] != "done" {
			t.Errorf("the line that should work: %s", l)
		}
		fmt.Fprintln(&paths, obj["path"])
		delete(obj, "path")
		b, _ := json.Marshal(obj)
		fmt.Fprintf(&rep, "%s\n", b)
	}
	var reasons strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(read(t, failed)))
	nFailed := 0
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "# ") {
			reasons.WriteString(sc.Text() + "\n")
		} else {
			nFailed++
		}
	}
	if nFailed != len(lines)-1 || strings.Count(rep.String(), "\n") != len(lines) {
		t.Errorf("%d lines in --failed, %d in --report; want %d and %d\nstderr:\n%s", nFailed, strings.Count(rep.String(), "\n"), len(lines)-1, len(lines), stderr.String())
	}
	secret := regexp.MustCompile(`URL ?SECRET|HEADERSECRET|NETRCSECRET`)
	for name, out := range map[string]string{"stderr": stderr.String(), "--report": rep.String(), "--failed reasons": reasons.String()} {
		for _, l := range strings.Split(out, "\n") {
			if secret.MatchString(l) {
				t.Errorf("%s shows a secret: %s", name, l)
			}
		}
	}
	if regexp.MustCompile(`URLSECRET[134]`).MatchString(paths.String()) {
		t.Errorf("a path holds user information:\n%s", paths.String())
	}
	// What is masked is still there, so a user can tell the lines apart.
	for _, want := range []string{`"url":"http://***@127.0.0.1`, `"final_url":"http://***@127.0.0.1`} {
		if !strings.Contains(rep.String(), want) {
			t.Errorf("--report has no %s:\n%s", want, rep.String())
		}
	}
	// The credentials did their work.
	if got := a.Received("/f/ok?size=10"); len(got) != 1 || got[0].Header.Get("Authorization") != "Bearer HEADERSECRET1" {
		t.Errorf("the server got %+v", got)
	}
}

// closedAddr returns an address of 127.0.0.1 where nothing listens: a
// connection there is refused at once.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // refused from now on
	return addr
}
