package download_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/download"
	"github.com/ck-tools/ck/lib/fetchtest"
)

// BenchmarkFetch64MiB measures what hashing while streaming costs a 64 MiB
// download from lib/fetchtest (on 127.0.0.1, to tmpfs where there is one,
// every durability step included). Each round downloads the file once plain
// (no checksum, no --report) and once hashed, interleaved, so the drift of a
// shared machine hits both alike. Metrics: MB/s of each, and "ratio", the
// hashed download's time over the plain one's (1.00: free).
//
//	go test -run '^$' -bench Fetch64MiB -benchtime 10x ./lib/download
func BenchmarkFetch64MiB(b *testing.B) {
	srv := fetchtest.New()
	defer srv.Close()
	const size = 64 << 20
	path := fmt.Sprintf("/f/big?size=%d", size)
	sums := map[string]string{}
	for algo, h := range hashes {
		d := h()
		io.Copy(d, fetchtest.BodyReader("big", size))
		sums[algo] = fmt.Sprintf("%s=%x", algo, d.Sum(nil))
	}
	dir := b.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if dir, err = os.MkdirTemp("/dev/shm", "ckbench"); err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(dir)
	}
	run := func(b *testing.B, f *download.Fetcher, o download.Options) float64 {
		dest := filepath.Join(dir, "file")
		os.Remove(dest)
		start := time.Now()
		res := f.FetchWith(context.Background(), srv.URL+path, "h", dest, o)
		el := time.Since(start).Seconds()
		if res.Status != download.Done || res.Bytes != size {
			b.Fatalf("%s with %d bytes (%v)", res.Status, res.Bytes, res.Err)
		}
		return el
	}
	for _, tc := range []struct {
		name   string
		report bool   // Fetcher.SHA256, as --report sets it
		algo   string // the line's checksum, "" for none
	}{
		{"report sha256", true, ""},
		{"checksum sha256", false, "sha256"},
		{"checksum md5", false, "md5"},
		{"checksum sha1", false, "sha1"},
		{"checksum sha512", false, "sha512"},
		{"checksum sha512 and report", true, "sha512"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			plain := newFetcher(0)
			hashed := newFetcher(0)
			hashed.SHA256 = tc.report
			var o download.Options
			if tc.algo != "" {
				c, err := download.ParseChecksum(sums[tc.algo])
				if err != nil {
					b.Fatal(err)
				}
				o.Checksum = c
			}
			var plainT, hashedT float64
			for b.Loop() {
				plainT += run(b, plain, download.Options{})
				hashedT += run(b, hashed, o)
			}
			mb := float64(size) * float64(b.N) / 1e6
			b.ReportMetric(mb/plainT, "plain-MB/s")
			b.ReportMetric(mb/hashedT, "hashed-MB/s")
			b.ReportMetric(hashedT/plainT, "ratio")
		})
	}
}
