package download_test

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/download"
)

// proxyChildEnv, when set, makes TestProxyChild print the proxy the client
// of NewClient(ClientOptions{Proxy: $value}) picks for a few URLs. net/http
// reads HTTP_PROXY, HTTPS_PROXY and NO_PROXY once per process, so each
// environment gets its own process; no request is made.
const proxyChildEnv = "CK_PROXY_CHILD"

func TestProxyChild(t *testing.T) {
	opt, ok := os.LookupEnv(proxyChildEnv)
	if !ok {
		t.Skip("run by TestClientProxy")
	}
	c := mustClient(download.NewClient(download.ClientOptions{Jobs: 1, PerHost: 1, Proxy: strings.TrimPrefix(opt, "-")}))
	for _, u := range []string{"http://example.org/a", "https://example.org/a", "http://other.example/a", "http://127.0.0.1:9/a"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		p, err := download.PoolTemplate(c.Transport.(*download.Pool)).Proxy(req)
		fmt.Printf("%s -> %v %v\n", u, p, err)
	}
}

func TestClientProxy(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proxy string // "-": no --proxy
		env   []string
		want  string
	}{
		{"HTTP_PROXY and HTTPS_PROXY", "-", []string{"HTTP_PROXY=http://hp:1", "HTTPS_PROXY=http://sp:2"},
			"http://example.org/a -> http://hp:1 <nil>\nhttps://example.org/a -> http://sp:2 <nil>\nhttp://other.example/a -> http://hp:1 <nil>\nhttp://127.0.0.1:9/a -> <nil> <nil>\n"},
		{"NO_PROXY", "-", []string{"HTTP_PROXY=http://hp:1", "NO_PROXY=other.example"},
			"http://example.org/a -> http://hp:1 <nil>\nhttps://example.org/a -> <nil> <nil>\nhttp://other.example/a -> <nil> <nil>\nhttp://127.0.0.1:9/a -> <nil> <nil>\n"},
		{"--proxy over the environment", "-pp:3", []string{"HTTP_PROXY=http://hp:1", "NO_PROXY=other.example"},
			"http://example.org/a -> http://pp:3 <nil>\nhttps://example.org/a -> http://pp:3 <nil>\nhttp://other.example/a -> http://pp:3 <nil>\nhttp://127.0.0.1:9/a -> http://pp:3 <nil>\n"},
		{"socks5", "-socks5://u:p@sp:4", nil,
			"http://example.org/a -> socks5://u:p@sp:4 <nil>\nhttps://example.org/a -> socks5://u:p@sp:4 <nil>\nhttp://other.example/a -> socks5://u:p@sp:4 <nil>\nhttp://127.0.0.1:9/a -> socks5://u:p@sp:4 <nil>\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestProxyChild$", "-test.count=1")
			cmd.Env = []string{proxyChildEnv + "=" + tc.proxy}
			for _, kv := range os.Environ() {
				if k, _, _ := strings.Cut(kv, "="); !strings.HasSuffix(strings.ToUpper(k), "_PROXY") && k != "REQUEST_METHOD" {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, tc.env...)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			got, _, _ := strings.Cut(string(out), "PASS")
			if got != tc.want {
				t.Errorf("proxies:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestClientOptionErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		o    download.ClientOptions
		want string
	}{
		{download.ClientOptions{CACert: filepath.Join(dir, "missing.pem")}, "CA certificates " + filepath.Join(dir, "missing.pem") + ": no such file or directory"},
		{download.ClientOptions{CACert: notPEM}, "CA certificates " + notPEM + ": no PEM certificate in it"},
		{download.ClientOptions{Proxy: "ftp://u:s3cret@h:1"}, `proxy ftp://***@h:1: scheme "ftp" is not http, https, socks5 or socks5h`},
		{download.ClientOptions{Proxy: "http://"}, "proxy http://: no host"},
		{download.ClientOptions{Proxy: "u:s3cret@h:%zz"}, "proxy http://***@h:%zz: not a URL"},
	} {
		_, err := download.NewClient(tc.o)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("NewClient(%+v): %v; want %s", tc.o, err, tc.want)
		}
	}
}

// caFile writes the certificate of a TLS test server to a PEM file, for
// ClientOptions.CACert, and returns its path.
func caFile(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o666); err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestClientResumesTLS: a host dialled again (here each answer closes its
// connection) resumes its TLS session instead of a full handshake.
func TestClientResumesTLS(t *testing.T) {
	var mu sync.Mutex
	var resumed []bool
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if tc, ok := c.(*tls.Conn); ok && st == http.StateActive {
			mu.Lock()
			resumed = append(resumed, tc.ConnectionState().DidResume)
			mu.Unlock()
		}
	}
	srv.StartTLS()
	defer srv.Close()
	ca := caFile(t, srv)
	c := mustClient(download.NewClient(download.ClientOptions{ConnectTimeout: 5 * time.Second, Jobs: 1, PerHost: 1, CACert: ca}))
	for i := range 3 {
		get(t, c, fmt.Sprintf("%s/r%d", srv.URL, i))
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []bool{false, true, true}; !slices.Equal(resumed, want) {
		t.Errorf("TLS connections resumed: %v; want %v (a full handshake, then resumed sessions)", resumed, want)
	}
}

// TestClientTLSReadBuffer: over TLS a connection's read buffer is one
// record's plaintext (16 KiB), which is the most a read of a TLS connection
// hands over (the 32 KiB of plain HTTP would never fill, on every
// connection), and a body of many records still arrives whole.
func TestClientTLSReadBuffer(t *testing.T) {
	body := strings.Repeat("0123456789abcdef", 100<<10/16) // 100 KiB: 7 records
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	defer srv.Close()
	ca := caFile(t, srv)
	c := mustClient(download.NewClient(download.ClientOptions{ConnectTimeout: 5 * time.Second, Jobs: 1, PerHost: 1, CACert: ca}))
	resp, err := c.Get(srv.URL + "/big")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(got) != body {
		t.Fatalf("read %d bytes (%v); want the %d of the body", len(got), err, len(body))
	}
	u, _ := url.Parse(srv.URL)
	if n := download.ReadBufferOf(c, download.HostKey(u)); n != 16<<10 {
		t.Errorf("the TLS host's read buffer is %d bytes; want 16 KiB, one record", n)
	}
}
