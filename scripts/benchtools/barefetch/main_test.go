package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// body is the content the test server gives name.
func body(name string) []byte { return bytes.Repeat([]byte(name+"\n"), 300) }

func server(t *testing.T) (*httptest.Server, *atomic.Int64, *atomic.Int64) {
	var requests, conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if strings.HasSuffix(r.URL.Path, "/missing") {
			http.NotFound(w, r)
			return
		}
		w.Write(body(filepath.Base(r.URL.Path)))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &requests, &conns
}

// Every URL becomes its file, byte for byte, owned by its URL, over one
// kept-alive connection per worker; a file already there is not fetched.
func TestFetches(t *testing.T) {
	srv, requests, conns := server(t)
	dir := t.TempDir()
	out := filepath.Join(dir, strings.TrimPrefix(srv.URL, "http://"), "s")
	os.MkdirAll(out, 0o777)
	os.WriteFile(filepath.Join(out, "f7"), []byte("kept"), 0o666)
	var list strings.Builder
	for i := range 50 {
		fmt.Fprintf(&list, "%s/s/f%d\n", srv.URL, i)
	}
	var stderr bytes.Buffer
	if code := run([]string{"-j", "4", "-d", dir}, strings.NewReader(list.String()), &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for i := range 50 {
		name := fmt.Sprintf("f%d", i)
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		want := body(name)
		if i == 7 {
			want = []byte("kept")
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes, want %d", name, len(got), len(want))
		}
	}
	if n := requests.Load(); n != 49 {
		t.Errorf("%d requests for 49 missing files", n)
	}
	if n := conns.Load(); n > 4 {
		t.Errorf("%d connections for 4 workers on one host", n)
	}
	owner := make([]byte, 256)
	n, err := unix.Getxattr(filepath.Join(out, "f3"), "user.ck.owner", owner)
	switch {
	case err == unix.ENOTSUP:
		t.Log("no user xattrs on this file system: owner not checked")
	case err != nil:
		t.Fatal(err)
	case string(owner[:n]) != srv.URL+"/s/f3":
		t.Errorf("owner %q", owner[:n])
	}
}

// An answer that is not a 200 stops it with exit 1 and names the URL.
func TestFailure(t *testing.T) {
	srv, _, _ := server(t)
	var stderr bytes.Buffer
	code := run([]string{"-j", "2", "-d", t.TempDir()}, strings.NewReader(srv.URL+"/s/a\n"+srv.URL+"/s/missing\n"), &stderr)
	if code != 1 || !strings.Contains(stderr.String(), srv.URL+"/s/missing: HTTP 404") {
		t.Fatalf("exit %d, stderr %q; want 1 naming the URL and its 404", code, stderr.String())
	}
}

// A missing output directory is a usage error.
func TestNoDir(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"-d", filepath.Join(t.TempDir(), "none")}, strings.NewReader(""), &stderr); code != 2 {
		t.Fatalf("exit %d, stderr %q; want 2", code, stderr.String())
	}
}

// Directories are made as the URLs need them, where ckfetch's default
// layout puts the files: DIR/HOST:PORT/PATH.
func TestMakesDirs(t *testing.T) {
	srv, _, _ := server(t)
	dir := t.TempDir()
	var stderr bytes.Buffer
	list := srv.URL + "/a/b/f1\n" + srv.URL + "/a/f2\n" + srv.URL + "/a/b/f3\n"
	if code := run([]string{"-j", "2", "-d", dir}, strings.NewReader(list), &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, p := range []string{"a/b/f1", "a/f2", "a/b/f3"} {
		got, err := os.ReadFile(filepath.Join(dir, host, p))
		if err != nil || !bytes.Equal(got, body(filepath.Base(p))) {
			t.Fatalf("%s: %d bytes, %v", p, len(got), err)
		}
	}
}
