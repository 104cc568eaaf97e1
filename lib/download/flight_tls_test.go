package download_test

// A hop over https goes through net/http's Transport, which only a context
// can end: the one its flight makes for it (flight.context). A stall and a
// cancel end it there as they end a plain-http one.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/download"
	"github.com/ck-tools/ck/lib/durable"
	"github.com/ck-tools/ck/lib/fetchtest"
)

func tlsFetcher(t *testing.T, retries int, stall time.Duration) (*download.Fetcher, *fetchtest.Server) {
	t.Helper()
	srv, err := fetchtest.NewTLS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.CAPEM, 0o666); err != nil {
		t.Fatal(err)
	}
	c, err := download.NewClient(download.ClientOptions{ConnectTimeout: 5 * time.Second, StallTimeout: stall, Jobs: 2, PerHost: 2, CACert: ca})
	if err != nil {
		t.Fatal(err)
	}
	return &download.Fetcher{Client: c, Retries: retries, Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		StallTimeout: stall, Dirs: &durable.DirSyncer{}}, srv
}

// fetchWithin is f.Fetch, failing the test if it has not returned within
// limit (a stall nothing ends would otherwise hold the test for good).
func fetchWithin(t *testing.T, f *download.Fetcher, url, dest string, limit time.Duration) download.Result {
	t.Helper()
	done := make(chan download.Result, 1)
	go func() { done <- f.Fetch(context.Background(), url, "h", dest) }()
	select {
	case res := <-done:
		return res
	case <-time.After(limit):
		t.Fatalf("%s still runs after %v", url, limit)
		return download.Result{}
	}
}

// A body that stops over https fails its attempt as stalled; the retry
// resumes it.
func TestStallTimeoutTLS(t *testing.T) {
	f, srv := tlsFetcher(t, 2, 200*time.Millisecond)
	path := "/f/s?size=300000&stall=100000"
	dest := filepath.Join(t.TempDir(), "file")
	res := fetchWithin(t, f, srv.URL+path, dest, 30*time.Second)
	if res.Status != download.Done || res.Attempts != 2 {
		t.Fatalf("got %s after %d attempts (%v); want done after 2", res.Status, res.Attempts, res.Err)
	}
	wantBody(t, dest, fetchtest.Body("s", 300000))
	f.Retries = 0
	res = fetchWithin(t, f, srv.URL+"/f/t?size=300000&stall=100000", filepath.Join(t.TempDir(), "t"), 30*time.Second)
	if res.Status != download.Failed || res.Err == nil || !strings.Contains(res.Err.Error(), "stalled") {
		t.Fatalf("without retries: %s (%v); want failed as stalled", res.Status, res.Err)
	}
}

// Cancelling the context of a download whose https body has stalled ends it
// at once as canceled, its .part kept.
func TestCancelTLS(t *testing.T) {
	f, srv := tlsFetcher(t, 0, 0)
	dest := filepath.Join(t.TempDir(), "file")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan download.Result, 1)
	go func() { done <- f.Fetch(ctx, srv.URL+"/f/c?size=300000&stall=100000", "h", dest) }()
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		if st, err := os.Stat(dest + ".part"); err == nil && st.Size() > 0 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("no .part with bytes after 10 s")
		}
	}
	cancel()
	select {
	case res := <-done:
		if res.Status != download.Canceled {
			t.Fatalf("got %s (%v); want canceled", res.Status, res.Err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled download still runs after 10 s")
	}
	if _, err := os.Stat(dest + ".part"); err != nil {
		t.Errorf("the .part is gone: %v", err)
	}
}
