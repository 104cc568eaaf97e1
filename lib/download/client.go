package download

// The HTTP client: connections, timeouts and redirects.

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// MaxRedirects is how many redirects one request follows.
const MaxRedirects = 10

var errTooManyRedirects = fmt.Errorf("stopped after %d redirects", MaxRedirects)

// NewClient returns the HTTP client ckfetch uses: connect timeout, a header
// timeout equal to the stall timeout (0: none), no transparent compression
// (the bytes on disk are the bytes of the resource), redirects followed up
// to MaxRedirects, and no overall time limit, so large files finish. Its
// Transport is a *Pool (one Transport per host, up to perHost idle
// connections each, jobs + SpareConns open over all hosts), whose hosts'
// Transports are clones of the one built here: every transport setting
// belongs in it.
func NewClient(connect, stall time.Duration, jobs, perHost int) *http.Client {
	dialer := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		MaxIdleConnsPerHost:   perHost, // per host: see Pool
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   connect,
		ResponseHeaderTimeout: stall,
		DisableCompression:    true,
		ForceAttemptHTTP2:     true,
		ReadBufferSize:        32 << 10, // headers and a small body in one read
	}
	return &http.Client{
		Transport: NewPool(tr, jobs, perHost),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > MaxRedirects {
				return errTooManyRedirects
			}
			return nil
		},
	}
}
