package fetchtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"
)

// Proxy is a toxiproxy TCP proxy, embedded in the test process, in front of
// a Server: requests sent to Proxy.URL reach the Server through network
// faults (toxics) that a test adds and removes while connections are open.
type Proxy struct {
	// URL is the base URL of the Server through the proxy,
	// "http://127.0.0.1:PORT".
	URL string
	// Addr is the proxy's listening address, 127.0.0.1:PORT.
	Addr string

	p    *toxiproxy.Proxy
	seq  atomic.Int64
	done atomic.Bool
}

var proxySeq atomic.Int64

// NewProxy starts a proxy on a free port of 127.0.0.1 that forwards to srv.
// Close it when done.
func NewProxy(srv *Server) (*Proxy, error) {
	upstream := srv.Listener.Addr().String()
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	name := fmt.Sprintf("fetchtest%d", proxySeq.Add(1))
	p := toxiproxy.NewProxy(api, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("start toxiproxy in front of %s: %w", upstream, err)
	}
	p.Lock()
	addr := p.Listen
	p.Unlock()
	return &Proxy{URL: "http://" + addr, Addr: addr, p: p}, nil
}

// StartProxy is NewProxy for tests: it fails tb on error and closes the
// proxy when the test ends.
func StartProxy(tb testing.TB, srv *Server) *Proxy {
	tb.Helper()
	p, err := NewProxy(srv)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	return p
}

// Close stops the proxy and closes every connection through it.
func (p *Proxy) Close() {
	if p.done.Swap(true) {
		return
	}
	p.p.Stop()
}

// Toxic describes one toxic; see toxiproxy's README for the types and their
// attributes ("latency": latency, jitter (ms); "bandwidth": rate (KB/s);
// "reset_peer": timeout (ms); "timeout": timeout (ms, 0 for ever);
// "limit_data": bytes; "slow_close": delay (ms); "slicer": average_size,
// size_variation, delay (µs)).
type Toxic struct {
	Name       string         `json:"name,omitempty"`     // default: a unique name
	Type       string         `json:"type"`               // e.g. "latency"
	Stream     string         `json:"stream,omitempty"`   // "downstream" (default: server to client) or "upstream"
	Toxicity   float32        `json:"toxicity,omitempty"` // share of connections hit, default 1
	Attributes map[string]any `json:"attributes,omitempty"`
}

// Add adds a toxic, which applies at once to open connections too, and
// returns its name for Remove.
func (p *Proxy) Add(t Toxic) (string, error) {
	if t.Name == "" {
		t.Name = fmt.Sprintf("%s_%d", t.Type, p.seq.Add(1))
	}
	b, err := json.Marshal(t)
	if err != nil {
		return "", fmt.Errorf("encode toxic %s: %w", t.Name, err)
	}
	if _, err := p.p.Toxics.AddToxicJson(bytes.NewReader(b)); err != nil {
		return "", fmt.Errorf("add toxic %s: %w", t.Name, err)
	}
	return t.Name, nil
}

// Remove removes the toxic called name.
func (p *Proxy) Remove(name string) error {
	if err := p.p.Toxics.RemoveToxic(context.Background(), name); err != nil {
		return fmt.Errorf("remove toxic %s: %w", name, err)
	}
	return nil
}

// RemoveAll removes every toxic.
func (p *Proxy) RemoveAll() {
	p.p.Toxics.ResetToxics(context.Background())
}

// Latency delays the data from the server by d (plus or minus jitter).
func (p *Proxy) Latency(d, jitter time.Duration) (string, error) {
	return p.Add(Toxic{Type: "latency", Attributes: map[string]any{"latency": d.Milliseconds(), "jitter": jitter.Milliseconds()}})
}

// Bandwidth limits the data from the server to kbPerSec KB (1024 bytes) per
// second.
func (p *Proxy) Bandwidth(kbPerSec int64) (string, error) {
	return p.Add(Toxic{Type: "bandwidth", Attributes: map[string]any{"rate": kbPerSec}})
}

// ResetPeer resets (TCP RST) every connection after d; 0 resets at once.
func (p *Proxy) ResetPeer(d time.Duration) (string, error) {
	return p.Add(Toxic{Type: "reset_peer", Attributes: map[string]any{"timeout": d.Milliseconds()}})
}

// Timeout drops all data from the server and closes the connection after d;
// with 0 it holds the connection until the toxic is removed. The server's
// own close still reaches the client (as an EOF), so pair it with a body
// that takes time (stall=, slow=) for a hang, or add a "timeout" toxic on
// the "upstream" stream so that requests never arrive.
func (p *Proxy) Timeout(d time.Duration) (string, error) {
	return p.Add(Toxic{Type: "timeout", Attributes: map[string]any{"timeout": d.Milliseconds()}})
}

// LimitData closes each connection after n bytes from the server (response
// headers included).
func (p *Proxy) LimitData(n int64) (string, error) {
	return p.Add(Toxic{Type: "limit_data", Attributes: map[string]any{"bytes": n}})
}

// Toxics returns the names of the toxics in place, sorted.
func (p *Proxy) Toxics() []string {
	var names []string
	for _, t := range p.p.Toxics.GetToxicArray() {
		if w, ok := t.(*toxics.ToxicWrapper); ok {
			names = append(names, w.Name)
		}
	}
	slices.Sort(names)
	return names
}
