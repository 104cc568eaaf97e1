package download_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ck-tools/ck/lib/download"
	"github.com/ck-tools/ck/lib/fetchtest"
)

// memStore is a Store in memory whose Put fails as told.
type memStore struct {
	mu      sync.Mutex
	objects map[string][]byte
	owners  map[string]string
	finals  int     // Final calls
	puts    int     // Put calls
	fail    []error // the errors of the next Puts, in order
	failFin []error // the errors of the next Final calls, in order
	// atPut, if set, runs at each Put with the spooled file's name.
	atPut func(name string)
}

func newMemStore() *memStore {
	return &memStore{objects: map[string][]byte{}, owners: map[string]string{}}
}

func (m *memStore) Final(_ context.Context, name, rawURL string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.finals++
	if len(m.failFin) > 0 {
		err := m.failFin[0]
		m.failFin = m.failFin[1:]
		return false, err
	}
	if _, ok := m.objects[name]; !ok {
		return false, nil
	}
	if m.owners[name] != rawURL {
		return false, errors.New(name + " is another URL's")
	}
	return true, nil
}

func (m *memStore) Put(_ context.Context, name string, f *os.File, size int64, rawURL string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.puts++
	if m.atPut != nil {
		m.atPut(f.Name())
	}
	if len(m.fail) > 0 {
		err := m.fail[0]
		m.fail = m.fail[1:]
		if err != nil {
			return err
		}
	}
	b, err := io.ReadAll(io.NewSectionReader(f, 0, size))
	if err != nil {
		return err
	}
	m.objects[name], m.owners[name] = b, rawURL
	return nil
}

func (m *memStore) Where(name string) string { return "mem://" + name }

func storeFetcher(t *testing.T, s download.Store) (*download.Fetcher, string) {
	f := newFetcher(3)
	f.Root = t.TempDir()
	f.Store = s
	return f, f.Root
}

// TestStorePut: a whole .part is Put (fsynced first, as its bytes show),
// under its name relative to Root, then removed; Result names the object;
// the next Fetch asks the store and makes no request.
func TestStorePut(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	m := newMemStore()
	f, root := storeFetcher(t, m)
	var spooled string
	m.atPut = func(name string) { spooled = name }
	dest := filepath.Join(root, "h", "a.bin")
	res := f.Fetch(context.Background(), srv.URL+"/f/a?size=70000", "h", dest)
	if res.Status != download.Done || res.Path != "mem://h/a.bin" {
		t.Fatalf("%s %q %v; want done at mem://h/a.bin", res.Status, res.Path, res.Err)
	}
	if got := m.objects["h/a.bin"]; string(got) != string(fetchtest.Body("a", 70000)) {
		t.Fatalf("stored %d bytes, not the server's", len(got))
	}
	if spooled != dest+".part" {
		t.Errorf("Put read %q; want the spooled %s.part", spooled, dest)
	}
	if m, _ := filepath.Glob(filepath.Join(root, "h", "*")); len(m) != 0 {
		t.Errorf("left in the spool: %v", m)
	}
	srv.Reset()
	res = f.Fetch(context.Background(), srv.URL+"/f/a?size=70000", "h", dest)
	if res.Status != download.Exists || srv.TotalRequests() != 0 {
		t.Errorf("again: %s with %d requests; want exists and none", res.Status, srv.TotalRequests())
	}
	if m.finals != 2 {
		t.Errorf("%d Final calls for two Fetches; want one each", m.finals)
	}
	// Another URL with this name: the line fails, nothing is fetched.
	res = f.Fetch(context.Background(), srv.URL+"/f/b?size=10", "h", dest)
	if res.Status != download.Failed || res.Fatal || !strings.Contains(res.Err.Error(), "another URL's") || srv.TotalRequests() != 0 {
		t.Errorf("another URL: %s fatal=%v %v, %d requests; want failed, not fatal, none", res.Status, res.Fatal, res.Err, srv.TotalRequests())
	}
}

// TestStorePutErrors: a retryable Put error is retried (the .part kept and
// not downloaded again), a fatal one stops the run, any other fails the
// line; the .part stays for a later run either way.
func TestStorePutErrors(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	boom := errors.New("boom")
	tests := []struct {
		name   string
		fail   []error
		status download.Status
		fatal  bool
		puts   int
	}{
		{"retryable then ok", []error{download.Retryable(boom), download.Retryable(boom)}, download.Done, false, 3},
		{"retryable past the retries", []error{download.Retryable(boom), download.Retryable(boom), download.Retryable(boom), download.Retryable(boom)}, download.Failed, false, 4},
		{"fatal", []error{download.Fatal(boom)}, download.Failed, true, 1},
		{"final", []error{boom}, download.Failed, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.Reset()
			m := newMemStore()
			m.fail = tt.fail
			f, root := storeFetcher(t, m)
			dest := filepath.Join(root, "x")
			res := f.Fetch(context.Background(), srv.URL+"/f/x?size=100000", "h", dest)
			if res.Status != tt.status || res.Fatal != tt.fatal || m.puts != tt.puts {
				t.Fatalf("%s fatal=%v after %d Puts (%v); want %s fatal=%v after %d", res.Status, res.Fatal, m.puts, res.Err, tt.status, tt.fatal, tt.puts)
			}
			if n := srv.TotalRequests(); n != 1 {
				t.Errorf("%d requests; want 1: a Put is retried, not the download", n)
			}
			_, err := os.Stat(dest + ".part")
			if kept := err == nil; kept != (tt.status != download.Done) {
				t.Errorf(".part kept: %v; want it kept exactly when not stored", kept)
			}
			if tt.status == download.Done {
				return
			}
			// The next run Puts the whole .part it finds, downloading
			// nothing again (the server answers its Range with 416).
			srv.Reset()
			m.fail = nil
			res = f.Fetch(context.Background(), srv.URL+"/f/x?size=100000", "h", dest)
			if res.Status != download.Done || res.Bytes != 0 || string(m.objects["x"]) != string(fetchtest.Body("x", 100000)) {
				t.Errorf("next run: %s, %d bytes received (%v); want done from the spool", res.Status, res.Bytes, res.Err)
			}
		})
	}
}

// TestStoreFinalErrors: a retryable error of the store's look at the final
// name is retried; a fatal one stops the run before any request.
func TestStoreFinalErrors(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	boom := errors.New("boom")
	m := newMemStore()
	m.failFin = []error{download.Retryable(boom), download.Retryable(boom)}
	f, root := storeFetcher(t, m)
	res := f.Fetch(context.Background(), srv.URL+"/f/y?size=10", "h", filepath.Join(root, "y"))
	if res.Status != download.Done || m.finals != 3 {
		t.Errorf("retryable: %s after %d Final calls (%v); want done after 3", res.Status, m.finals, res.Err)
	}
	m.failFin = []error{download.Fatal(boom)}
	srv.Reset()
	res = f.Fetch(context.Background(), srv.URL+"/f/z?size=10", "h", filepath.Join(root, "z"))
	if res.Status != download.Failed || !res.Fatal || srv.TotalRequests() != 0 {
		t.Errorf("fatal: %s fatal=%v, %d requests; want a fatal failure before any request", res.Status, res.Fatal, srv.TotalRequests())
	}
}

// TestStoreDropsSpooled: a whole .part left in the spool by a run killed
// after its Put (before the removal) is removed when the next Fetch finds
// the object stored.
func TestStoreDropsSpooled(t *testing.T) {
	srv := fetchtest.New()
	defer srv.Close()
	m := newMemStore()
	f, root := storeFetcher(t, m)
	dest := filepath.Join(root, "k")
	u := srv.URL + "/f/k?size=100"
	m.objects["k"], m.owners["k"] = fetchtest.Body("k", 100), u
	if err := os.WriteFile(dest+".part", fetchtest.Body("k", 100), 0o666); err != nil {
		t.Fatal(err)
	}
	res := f.Fetch(context.Background(), u, "h", dest)
	if res.Status != download.Exists || srv.TotalRequests() != 0 {
		t.Fatalf("%s, %d requests; want exists and none", res.Status, srv.TotalRequests())
	}
	if _, err := os.Stat(dest + ".part"); !os.IsNotExist(err) {
		t.Errorf("the spooled .part of a stored object is still there (%v)", err)
	}
}
