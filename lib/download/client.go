package download

// The HTTP client: connections, timeouts, trusted roots, proxy and
// redirects.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ck-tools/ck/lib/redact"
)

// MaxRedirects is how many redirects one attempt follows.
const MaxRedirects = 10

var errTooManyRedirects = fmt.Errorf("stopped after %d redirects", MaxRedirects)

// ClientOptions are the settings of NewClient.
type ClientOptions struct {
	ConnectTimeout time.Duration // for the TCP connect and the TLS handshake each
	StallTimeout   time.Duration // also the wait for response headers; 0: none
	Jobs, PerHost  int           // connections: PoolConns(Jobs) open in all, less the files open, PerHost per host (see Pool)
	// CACert is a PEM file of certificates trusted as roots besides the
	// system's (which honour SSL_CERT_FILE and SSL_CERT_DIR); "": the
	// system's alone.
	CACert string
	// Proxy is the URL of a proxy every request goes through (http://,
	// https://, socks5:// or socks5h://; a bare host:port means http://);
	// "": HTTP_PROXY, HTTPS_PROXY and NO_PROXY from the environment, as
	// net/http reads them (never for localhost and loopback addresses).
	Proxy string
}

// NewClient returns the HTTP client ckfetch uses: connect timeout, a header
// timeout equal to the stall timeout (0: none), no transparent compression
// (the bytes on disk are the bytes of the resource), HTTP/2 where TLS
// negotiates it (HTTP/1.1 otherwise and over plain http), and no overall
// time limit, so large files finish. Its Transport is a *Pool (clients of
// their own per host, up to PerHost idle connections each, PoolConns(Jobs)
// open over all hosts, less the files open), whose hosts' Transports are
// clones of the one built here, and whose lean HTTP/1.1 clients (plain
// http) take their settings from it: every transport setting belongs in it.
//
// It does not follow redirects: a redirect is the response, and Fetcher
// follows it one hop at a time (attempt.go), so that each hop takes the slot
// and the pacing of the host it goes to, and gets its headers anew from
// Fetcher.setHeaders, so credentials do not follow a redirect to another
// host.
func NewClient(o ClientOptions) (*http.Client, error) {
	dialer := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		MaxIdleConnsPerHost:   o.PerHost, // per host: see Pool
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   o.ConnectTimeout,
		ResponseHeaderTimeout: o.StallTimeout,
		DisableCompression:    true,
		ForceAttemptHTTP2:     true,     // custom dialer and TLS config would turn HTTP/2 off
		ReadBufferSize:        32 << 10, // headers and a small body in one read
	}
	// TLS sessions are resumed (one cache over all hosts, since a host's
	// Transport is a clone): a host whose connection the pool closed to make
	// room, and that is dialled again, costs no certificate chain to verify,
	// here or at the server.
	tr.TLSClientConfig = &tls.Config{ClientSessionCache: tls.NewLRUClientSessionCache(tlsSessions)}
	if o.CACert != "" {
		pool, err := caPool(o.CACert)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	if o.Proxy != "" {
		u, err := proxyURL(o.Proxy)
		if err != nil {
			return nil, err
		}
		tr.Proxy = http.ProxyURL(u)
	}
	return &http.Client{
		Transport: NewPool(tr, o.Jobs, o.PerHost),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, nil
}

// tlsSessions is how many TLS sessions the client keeps for resumption,
// the most recently used: a few hundred bytes each.
const tlsSessions = 4096

// caPool returns the system's roots with the PEM certificates of file added.
func caPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("CA certificates %s: %w", file, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool() // no system roots here: the file's alone
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA certificates %s: no PEM certificate in it (want -----BEGIN CERTIFICATE----- blocks)", file)
	}
	return pool, nil
}

// proxyURL parses a proxy URL; a bare host:port means http://host:port, as
// in curl. Its errors show the URL with its user information masked.
func proxyURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: not a URL", redact.Mask(s))
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "socks5", "socks5h":
	default:
		return nil, fmt.Errorf("proxy %s: scheme %q is not http, https, socks5 or socks5h", redact.Mask(s), u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("proxy %s: no host", redact.Mask(s))
	}
	return u, nil
}
