package fetchtest_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/url"
	"testing"

	"github.com/ck-tools/ck/lib/fetchtest"
)

func TestReceived(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	c := srv.Client()
	mustGet(t, c, srv.URL+"/f/h?size=10", "X-One", "1", "User-Agent", "probe/1")
	mustGet(t, c, srv.URL+"/f/h?size=10")
	mustGet(t, c, srv.URL+"/f/other?size=10", "X-One", "2")
	got := srv.Received(srv.URL + "/f/h?size=10")
	if len(got) != 2 {
		t.Fatalf("Received: %d requests, want 2: %+v", len(got), got)
	}
	if got[0].Header.Get("X-One") != "1" || got[0].Header.Get("User-Agent") != "probe/1" || got[0].Proto != "HTTP/1.1" {
		t.Errorf("first request: %+v", got[0])
	}
	if _, ok := got[1].Header["X-One"]; ok {
		t.Errorf("second request has the first one's header: %v", got[1].Header)
	}
	srv.Reset()
	if got := srv.Received("/f/h?size=10"); len(got) != 0 {
		t.Errorf("after Reset: %d requests received", len(got))
	}
}

func TestRedirectTo(t *testing.T) {
	a, b := fetchtest.New(), fetchtest.New()
	defer a.Close()
	defer b.Close()
	target := b.URL + "/f/x?size=5"
	resp, body := mustGet(t, a.Client(), a.URL+"/redirect?to="+url.QueryEscape(target))
	if resp.StatusCode != 200 || string(body) != string(fetchtest.Body("x", 5)) || resp.Request.URL.String() != target {
		t.Errorf("status %d, final URL %s", resp.StatusCode, resp.Request.URL)
	}
	if a.Requests("/redirect?to="+url.QueryEscape(target)) != 1 || b.Requests("/f/x?size=5") != 1 {
		t.Errorf("requests: %d at a, %d at b", a.TotalRequests(), b.TotalRequests())
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ = mustGet(t, noFollow, a.URL+"/redirect?status=307&to=/f/y")
	if resp.StatusCode != 307 || resp.Header.Get("Location") != "/f/y" {
		t.Errorf("status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, bad := range []string{"/redirect", "/redirect?to=/x&status=200"} {
		if resp, _ := mustGet(t, noFollow, a.URL+bad); resp.StatusCode != 400 {
			t.Errorf("%s: status %d, want 400", bad, resp.StatusCode)
		}
	}
}

func TestTLS(t *testing.T) {
	srv, err := fetchtest.NewTLS()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// Trusted through its CA, and speaking HTTP/2.
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(srv.CAPEM) {
		t.Fatalf("CAPEM holds no certificate: %q", srv.CAPEM)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, host := range []string{"127.0.0.1", "localhost"} {
		u := "https://" + net.JoinHostPort(host, port) + "/f/t?size=100"
		resp, body := mustGet(t, c, u)
		if resp.StatusCode != 200 || len(body) != 100 || resp.Proto != "HTTP/2.0" {
			t.Errorf("%s: status %d, %d bytes, %s", u, resp.StatusCode, len(body), resp.Proto)
		}
	}
	if got := srv.Received("/f/t?size=100"); len(got) != 2 || got[0].Proto != "HTTP/2.0" {
		t.Errorf("received %+v", got)
	}
	// Not trusted without it.
	_, err = (&http.Client{Transport: &http.Transport{}}).Get(srv.URL + "/f/t?size=1")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("a client without the CA: err %v, want an unknown authority", err)
	}
}
