package fetch_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ck-tools/ck/lib/fetch"
)

// benchDir is on tmpfs when there is one: file creation on a real disk
// varies too much run to run to measure ckfetch's own overhead.
func benchDir(b *testing.B) string {
	b.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "ckbench")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return b.TempDir()
}

// BenchmarkFetchSmall measures ckfetch's per-download overhead on 4 KiB
// files from an in-process server, every durability step included, against
// a baseline in the same run: a bare Go client with the same concurrency
// that writes each body with os.WriteFile (no .part, no fsync, no rename).
// The metric ratio is ckfetch's files/s over the baseline's.
func BenchmarkFetchSmall(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 4096)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.Write(body)
	}))
	defer srv.Close()
	const n, jobs = 2000, 16
	var urls strings.Builder
	for i := range n {
		fmt.Fprintf(&urls, "%s/f%d\n", srv.URL, i)
	}
	list := urls.String()

	var ckTotal, baseTotal float64
	for b.Loop() {
		dir := benchDir(b)
		b.StartTimer()
		ck := measure(func() {
			var out bytes.Buffer
			code := fetch.Main(context.Background(), []string{"-q", "-j", fmt.Sprint(jobs), "--per-host", fmt.Sprint(jobs), "-d", filepath.Join(dir, "ck")},
				strings.NewReader(list), &out, os.Stderr)
			if code != 0 || strings.Count(out.String(), "\n") != n {
				b.Fatalf("ckfetch: status %d, %d lines echoed", code, strings.Count(out.String(), "\n"))
			}
		})
		base := measure(func() { bareFetch(b, srv.URL, n, jobs, filepath.Join(dir, "base")) })
		ckTotal += ck
		baseTotal += base
	}
	b.ReportMetric(float64(n)*float64(b.N)/ckTotal, "files/s")
	b.ReportMetric(baseTotal/ckTotal, "ratio")
}

func measure(f func()) float64 {
	start := nowSeconds()
	f()
	return nowSeconds() - start
}

func bareFetch(b *testing.B, base string, n, jobs int, dir string) {
	os.MkdirAll(dir, 0o777)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: jobs}}
	var wg sync.WaitGroup
	next := make(chan int)
	for range jobs {
		wg.Go(func() {
			for i := range next {
				resp, err := client.Get(fmt.Sprintf("%s/f%d", base, i))
				if err != nil {
					b.Error(err)
					continue
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), data, 0o666)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
