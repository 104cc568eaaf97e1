package fetchtest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/fetchtest"
)

// fresh is a client that opens a new connection for every request, so each
// request meets the toxics in place when it starts.
func fresh() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

func TestProxyFaults(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	p := fetchtest.StartProxy(t, srv)
	c := fresh()
	const u = "/f/tx?size=50000"
	body := fetchtest.Body("tx", 50000)

	_, b := mustGet(t, c, p.URL+u)
	if !bytes.Equal(b, body) {
		t.Fatal("body through the clean proxy differs")
	}

	t.Run("limit_data", func(t *testing.T) {
		name, err := p.LimitData(2000)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Remove(name)
		resp, b, err := get(t, c, p.URL+u)
		if err == nil || len(b) >= 2000 || !bytes.Equal(b, body[:len(b)]) {
			t.Errorf("got %d bytes, err %v; want a prefix cut before 2000 bytes", len(b), err)
		}
		if resp.ContentLength != 50000 {
			t.Errorf("Content-Length %d", resp.ContentLength)
		}
	})

	t.Run("reset_peer", func(t *testing.T) {
		name, err := p.ResetPeer(0)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Remove(name)
		if resp, err := c.Get(p.URL + u); err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				t.Errorf("read %d bytes without error through reset_peer", len(b))
			}
		}
	})

	t.Run("latency", func(t *testing.T) {
		name, err := p.Latency(60*time.Millisecond, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Remove(name)
		start := time.Now()
		_, b := mustGet(t, c, p.URL+u)
		if took := time.Since(start); took < 60*time.Millisecond {
			t.Errorf("took %v, want at least the 60ms latency", took)
		}
		if !bytes.Equal(b, body) {
			t.Error("body differs")
		}
	})

	t.Run("bandwidth", func(t *testing.T) {
		name, err := p.Bandwidth(200) // 200 KB/s: 50000 bytes take about 0.25s
		if err != nil {
			t.Fatal(err)
		}
		defer p.Remove(name)
		start := time.Now()
		_, b := mustGet(t, c, p.URL+u)
		if took := time.Since(start); took < 150*time.Millisecond {
			t.Errorf("took %v, want about 250ms", took)
		}
		if !bytes.Equal(b, body) {
			t.Error("body differs")
		}
	})

	t.Run("timeout held until the client gives up", func(t *testing.T) {
		name, err := p.Timeout(0)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Remove(name)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		// The server sends its headers and stalls: the toxic eats them.
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/f/tx?stall=0", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("got a response through a timeout toxic: %s", resp.Status)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v, want the client's deadline", err)
		}
	})

	t.Run("add and remove", func(t *testing.T) {
		a, err := p.Add(fetchtest.Toxic{Name: "mine", Type: "latency", Stream: "upstream", Attributes: map[string]any{"latency": 1}})
		if err != nil || a != "mine" {
			t.Fatalf("Add: %q, %v", a, err)
		}
		if _, err := p.Add(fetchtest.Toxic{Name: "mine", Type: "latency"}); err == nil {
			t.Error("adding a second toxic of the same name did not fail")
		}
		if _, err := p.Add(fetchtest.Toxic{Type: "no_such_toxic"}); err == nil {
			t.Error("an unknown toxic type did not fail")
		}
		b, _ := p.Bandwidth(1000)
		if got := p.Toxics(); !slices.Equal(got, []string{b, "mine"}) {
			t.Errorf("Toxics() = %v, want [%s mine]", got, b)
		}
		if err := p.Remove("mine"); err != nil {
			t.Error(err)
		}
		if err := p.Remove("mine"); err == nil {
			t.Error("removing a removed toxic did not fail")
		}
		p.RemoveAll()
		if got := p.Toxics(); len(got) != 0 {
			t.Errorf("after RemoveAll: %v", got)
		}
	})

	_, b = mustGet(t, c, p.URL+u)
	if !bytes.Equal(b, body) {
		t.Error("body after removing the toxics differs")
	}
}
