package download

// The HTTP client: connections, timeouts and redirects.

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// MaxRedirects is how many redirects one attempt follows.
const MaxRedirects = 10

var errTooManyRedirects = fmt.Errorf("stopped after %d redirects", MaxRedirects)

// NewClient returns the HTTP client ckfetch uses: connect timeout, a header
// timeout equal to the stall timeout (0: none), no transparent compression
// (the bytes on disk are the bytes of the resource), idle connections kept
// for jobs downloads over all hosts and perHost per host, and no overall time
// limit, so large files finish. It does not follow redirects: a redirect is
// the response, and Fetcher follows it one hop at a time (attempt.go), so
// that each hop takes the slot and the pacing of the host it goes to.
func NewClient(connect, stall time.Duration, jobs, perHost int) *http.Client {
	dialer := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          2 * jobs,
		MaxIdleConnsPerHost:   perHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   connect,
		ResponseHeaderTimeout: stall,
		DisableCompression:    true,
		ForceAttemptHTTP2:     true,
		ReadBufferSize:        32 << 10, // headers and a small body in one read
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
