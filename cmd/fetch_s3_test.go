package cmd_test

// ckfetch -d s3://BUCKET/PREFIX against a real S3 server (SeaweedFS, see
// s3server_test.go), through a proxy of the test's own that counts the S3
// requests by kind and can slow the bodies sent.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ck-tools/ck/lib/fetchtest"
	"github.com/ck-tools/ck/lib/outname"
)

// s3Proxy forwards to the S3 server and counts what it forwards.
type s3Proxy struct {
	URL   string
	mu    sync.Mutex
	count map[string]int // "HEAD", "PUT" (whole objects), "PART" (UploadPart), "PART-OK"
	slow  atomic.Int64   // bytes per second of request bodies; 0: as fast as they come
	// fail, if set, may answer a request of kind with an S3 error instead
	// of forwarding it: status and code, or 0.
	fail func(kind string) (status int, code string)
}

func newS3Proxy(t *testing.T) *s3Proxy {
	t.Helper()
	target, err := url.Parse(s3srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &s3Proxy{count: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(target) // keeps the Host the request was signed with
	rp.ErrorLog = log.New(io.Discard, "", 0)         // requests cut by a kill are expected
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := r.Method
		if r.Method == http.MethodPut && r.URL.Query().Has("partNumber") {
			kind = "PART"
		}
		p.add(kind)
		p.mu.Lock()
		fail := p.fail
		p.mu.Unlock()
		if fail != nil {
			if st, code := fail(kind); st != 0 {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(st)
				fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by the test</Message></Error>`, code)
				return
			}
		}
		if bps := p.slow.Load(); bps > 0 && r.Body != nil {
			r.Body = io.NopCloser(&slowReader{r: r.Body, bps: bps})
		}
		rec := &statusWriter{ResponseWriter: w}
		rp.ServeHTTP(rec, r)
		if kind == "PART" && rec.status == http.StatusOK {
			p.add("PART-OK")
		}
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *s3Proxy) add(kind string) {
	p.mu.Lock()
	p.count[kind]++
	p.mu.Unlock()
}

func (p *s3Proxy) n(kind string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count[kind]
}

func (p *s3Proxy) reset() {
	p.mu.Lock()
	p.count = map[string]int{}
	p.mu.Unlock()
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// slowReader passes on at most bps bytes per second.
type slowReader struct {
	r   io.Reader
	bps int64
}

func (s *slowReader) Read(b []byte) (int, error) {
	if len(b) > 32<<10 {
		b = b[:32<<10]
	}
	n, err := s.r.Read(b)
	time.Sleep(time.Duration(int64(n) * int64(time.Second) / s.bps))
	return n, err
}

func s3Get(t *testing.T, key string) []byte {
	t.Helper()
	out, err := s3Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(s3srv.Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	return b
}

func s3Exists(t *testing.T, key string) bool {
	t.Helper()
	_, err := s3Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(s3srv.Bucket), Key: aws.String(key)})
	return err == nil
}

// s3OpenUploads counts the multipart uploads open under prefix.
func s3OpenUploads(t *testing.T, prefix string) int {
	t.Helper()
	out, err := s3Client().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(s3srv.Bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	return len(out.Uploads)
}

// spoolFiles lists the files (not directories) under the spool.
func spoolFiles(t *testing.T, spool string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(spool, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	return files
}

// s3Key is the object key of the default name of rawURL under prefix.
func s3Key(t *testing.T, prefix, rawURL string) string {
	t.Helper()
	name, err := outname.FromURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return prefix + "/" + name
}

// TestFetchS3Run: 20 URLs into s3://, each line echoed only once its object
// is there, byte-exact; a rerun downloads nothing and asks one HEAD per
// line; a lost checkpoint rebuilt by ckskip | ckfetch | ckmark from nothing
// downloads nothing either; no credential in --report or --failed.
func TestFetchS3Run(t *testing.T) {
	needS3(t)
	srv := fetchtest.New()
	defer srv.Close()
	px := newS3Proxy(t)
	dir := t.TempDir()
	prefix := s3srv.Prefix(t)
	dest := "s3://" + s3srv.Bucket + "/" + prefix
	var urls []string
	var input strings.Builder
	for i := range 20 {
		u := fmt.Sprintf("%s/f/s3run-%d?size=%d", srv.URL, i, 1000+i*7919)
		urls = append(urls, u)
		input.WriteString(u + "\n")
	}
	args := []string{"-q", "-j", "4", "-d", dest, "--s3-endpoint", px.URL, "--spool", filepath.Join(dir, "spool"),
		"--report", filepath.Join(dir, "report.jsonl"), "--failed", filepath.Join(dir, "failed.txt")}

	p := startFetch(t, dir, strings.NewReader(input.String()), args...)
	for i, u := range urls {
		if got := p.line(); got != u {
			t.Fatalf("echoed line %d: %q; want %q\nstderr:\n%s", i+1, got, u, p.stderr)
		}
		// The echo comes after the Put: the object is there already.
		if !s3Exists(t, s3Key(t, prefix, u)) {
			t.Errorf("line %d echoed before its object %s exists", i+1, s3Key(t, prefix, u))
		}
	}
	if rest := p.rest(); rest != "" {
		t.Errorf("more echoed: %q", rest)
	}
	if st := how(p.wait(watchdog)); st != "exit 0" {
		t.Fatalf("ckfetch: %s; want exit 0\nstderr:\n%s", st, p.stderr)
	}
	for i, u := range urls {
		want := fetchtest.Body(fmt.Sprintf("s3run-%d", i), int64(1000+i*7919))
		if got := s3Get(t, s3Key(t, prefix, u)); !bytes.Equal(got, want) {
			t.Errorf("object of %s: %d bytes, not the server's %d", u, len(got), len(want))
		}
	}
	if f := spoolFiles(t, filepath.Join(dir, "spool")); len(f) != 0 {
		t.Errorf("spool files left after their objects are stored: %v", f)
	}
	report, _ := os.ReadFile(filepath.Join(dir, "report.jsonl"))
	if !strings.Contains(string(report), `"path":"`+dest+"/") {
		t.Errorf("the report names no s3:// path:\n%s", report)
	}
	if strings.Contains(string(report), s3srv.Secret) || strings.Contains(string(report), s3srv.Key) {
		t.Errorf("the report holds a credential")
	}

	// Rerun: one HEAD per line, no request to the HTTP server, no upload.
	srv.Reset()
	px.reset()
	out, stderr, st := runFetch(t, dir, input.String(), args...)
	if st != "exit 0" || out != input.String() {
		t.Fatalf("rerun: %s, echoed %q\nstderr:\n%s", st, out, stderr)
	}
	if n := srv.TotalRequests(); n != 0 {
		t.Errorf("rerun: %d requests to the HTTP server; want 0", n)
	}
	if h, put, part := px.n("HEAD"), px.n("PUT"), px.n("PART"); h != 20 || put != 0 || part != 0 {
		t.Errorf("rerun: %d HEAD, %d PUT, %d parts; want 20 HEAD (one per line) and nothing stored", h, put, part)
	}

	// --force downloads and stores every line again.
	srv.Reset()
	px.reset()
	out, stderr, st = runFetch(t, dir, input.String(), append(args, "--force")...)
	if st != "exit 0" || out != input.String() {
		t.Fatalf("--force: %s, echoed %q\nstderr:\n%s", st, out, stderr)
	}
	if n := srv.TotalRequests(); n != 20 {
		t.Errorf("--force: %d requests to the HTTP server; want 20", n)
	}
	if put := px.n("PUT"); put != 20 {
		t.Errorf("--force: %d PUT; want 20, one per line", put)
	}

	// A lost checkpoint, rebuilt from nothing: ckfetch finds every object.
	os.WriteFile(filepath.Join(dir, "urls.txt"), []byte(input.String()), 0o666)
	srv.Reset()
	pipeline := "ckskip -c check.txt urls.txt | ckfetch " + strings.Join(args, " ") + " | ckmark check.txt"
	if out, err := exec.Command("sh", "-c", "cd "+dir+" && "+pipeline).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", pipeline, err, out)
	}
	check, _ := os.ReadFile(filepath.Join(dir, "check.txt"))
	if got := strings.Count(string(check), "\n"); got != 20 {
		t.Errorf("the rebuilt checkpoint has %d lines; want 20:\n%s", got, check)
	}
	if n := srv.TotalRequests(); n != 0 {
		t.Errorf("rebuilding the checkpoint: %d requests to the HTTP server; want 0 downloads", n)
	}
	if n := s3OpenUploads(t, prefix+"/"); n != 0 {
		t.Errorf("%d multipart uploads left open", n)
	}
}

// TestFetchS3OpenErrors: bad credentials and a missing bucket stop the run
// before any download, with exit 2, a message that says what to do, and no
// credential in it.
func TestFetchS3OpenErrors(t *testing.T) {
	needS3(t)
	srv := fetchtest.New()
	defer srv.Close()
	dir := t.TempDir()
	input := srv.URL + "/f/s3err?size=100\n"
	spool := filepath.Join(dir, "spool")

	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-"+s3srv.Secret[:4]+"xyz")
	out, stderr, st := runFetch(t, dir, input, "-d", "s3://"+s3srv.Bucket+"/"+s3srv.Prefix(t), "--s3-endpoint", s3srv.Endpoint, "--spool", spool)
	if st != "exit 2" || out != "" || !strings.Contains(stderr, "AWS_SECRET_ACCESS_KEY") {
		t.Errorf("bad secret: %s, echoed %q, stderr %q; want exit 2 and a message naming AWS_SECRET_ACCESS_KEY", st, out, stderr)
	}
	if strings.Contains(stderr, "not-the-secret") || strings.Contains(stderr, s3srv.Key) {
		t.Errorf("bad secret: the message holds a credential: %q", stderr)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3srv.Secret)

	out, stderr, st = runFetch(t, dir, input, "-d", "s3://ck-no-such-bucket/x", "--s3-endpoint", s3srv.Endpoint, "--spool", spool)
	if st != "exit 2" || out != "" || !strings.Contains(stderr, `bucket "ck-no-such-bucket" does not exist`) {
		t.Errorf("missing bucket: %s, echoed %q, stderr %q; want exit 2 and a message that it does not exist", st, out, stderr)
	}
	if strings.Contains(stderr, s3srv.Secret) || strings.Contains(stderr, s3srv.Key) {
		t.Errorf("missing bucket: the message holds a credential: %q", stderr)
	}

	out, stderr, st = runFetch(t, dir, input, "-d", "out", "--s3-endpoint", s3srv.Endpoint)
	if st != "exit 2" || !strings.Contains(stderr, "-d s3://") {
		t.Errorf("--s3-endpoint without -d s3://: %s, %q; want exit 2 and why", st, stderr)
	}
	if n := srv.TotalRequests(); n != 0 {
		t.Errorf("%d requests to the HTTP server; want none before the bucket is open", n)
	}
}

// TestFetchS3Owner: an object stored for one URL fails the line of another
// URL with the same name, as a file of another URL does on disk.
func TestFetchS3Owner(t *testing.T) {
	needS3(t)
	srv := fetchtest.New()
	defer srv.Close()
	dir := t.TempDir()
	prefix := s3srv.Prefix(t)
	args := []string{"-q", "-d", "s3://" + s3srv.Bucket + "/" + prefix, "--s3-endpoint", s3srv.Endpoint, "--spool", filepath.Join(dir, "spool")}
	a, b := srv.URL+"/f/owner-a?size=300", srv.URL+"/f/owner-b?size=400"
	if out, stderr, st := runFetch(t, dir, a+"\tsame\n", args...); st != "exit 0" || out != a+"\tsame\n" {
		t.Fatalf("first: %s %q\n%s", st, out, stderr)
	}
	out, stderr, st := runFetch(t, dir, b+"\tsame\n", args...)
	if st != "exit 1" || out != "" || !strings.Contains(stderr, "is already the object of "+a) {
		t.Errorf("another URL: %s, echoed %q, stderr %q; want exit 1 and whose object it is", st, out, stderr)
	}
	if got := s3Get(t, prefix+"/same"); !bytes.Equal(got, fetchtest.Body("owner-a", 300)) {
		t.Errorf("the object changed")
	}
}

// TestFetchS3KillDuringDownload: kill -9 while a body streams into the
// (default) spool; the rerun resumes the .part (Range) and stores the exact object.
func TestFetchS3KillDuringDownload(t *testing.T) {
	needS3(t)
	srv := fetchtest.New()
	defer srv.Close()
	dir := t.TempDir()
	prefix := s3srv.Prefix(t)
	// The default spool: the user cache directory's ck/spool/BUCKET/PREFIX.
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	spool := filepath.Join(dir, "cache", "ck", "spool", s3srv.Bucket, filepath.FromSlash(prefix))
	const size = 600_000
	u := fmt.Sprintf("%s/f/killdl?size=%d&slow=300000", srv.URL, size)
	args := []string{"-q", "-d", "s3://" + s3srv.Bucket + "/" + prefix, "--s3-endpoint", s3srv.Endpoint}

	p := startFetch(t, dir, strings.NewReader(u+"\n"), args...)
	name, _ := outname.FromURL(u)
	part := filepath.Join(spool, filepath.FromSlash(name)) + outname.PartSuffix
	waitFor(t, "100 kB in the spooled .part", func() bool {
		st, err := os.Stat(part)
		return err == nil && st.Size() >= 100_000
	})
	p.cmd.Process.Kill()
	p.wait(watchdog)
	if s3Exists(t, s3Key(t, prefix, u)) {
		t.Fatal("the object exists before its download ended")
	}
	out, stderr, st := runFetch(t, dir, u+"\n", args...)
	if st != "exit 0" || out != u+"\n" {
		t.Fatalf("rerun: %s %q\n%s", st, out, stderr)
	}
	if got := s3Get(t, s3Key(t, prefix, u)); !bytes.Equal(got, fetchtest.Body("killdl", size)) {
		t.Errorf("object: %d bytes, not the server's %d", len(got), size)
	}
	if sent := srv.BytesSent(); sent >= 2*size {
		t.Errorf("the server sent %d bytes for a %d-byte file: the rerun did not resume", sent, size)
	}
	if f := spoolFiles(t, spool); len(f) != 0 {
		t.Errorf("spool files left: %v", f)
	}
}

// TestFetchS3KillDuringUpload: kill -9 in the middle of a multipart upload
// (12 MiB in 5 MiB parts, sent slowly); the rerun downloads nothing again,
// resumes the upload without resending the part that was in, stores the
// exact object and leaves no multipart upload open.
func TestFetchS3KillDuringUpload(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) { testFetchS3StopDuringUpload(t, sig) })
	}
}

// testFetchS3StopDuringUpload stops ckfetch with sig in the middle of a
// multipart upload: SIGTERM too leaves the upload open (it is not aborted),
// for the next run to resume.
func testFetchS3StopDuringUpload(t *testing.T, sig syscall.Signal) {
	needS3(t)
	srv := fetchtest.New()
	defer srv.Close()
	px := newS3Proxy(t)
	dir := t.TempDir()
	prefix := s3srv.Prefix(t)
	spool := filepath.Join(dir, "spool")
	const size = 12 << 20
	u := fmt.Sprintf("%s/f/killup?size=%d", srv.URL, size)
	args := []string{"-q", "-d", "s3://" + s3srv.Bucket + "/" + prefix, "--s3-endpoint", px.URL, "--spool", spool,
		"--s3-part-size", "5M", "--s3-multipart-threshold", "5M"}

	px.slow.Store(4 << 20) // 4 MiB/s: about 3 s for the upload
	p := startFetch(t, dir, strings.NewReader(u+"\n"), args...)
	waitFor(t, "a first part uploaded", func() bool { return px.n("PART-OK") >= 1 || p.ended() })
	p.cmd.Process.Signal(sig)
	if st, want := how(p.wait(watchdog)), map[syscall.Signal]string{syscall.SIGKILL: "signal killed", syscall.SIGTERM: "exit 143"}[sig]; st != want {
		t.Fatalf("after %v: %s; want %s\nstderr:\n%s", sig, st, want, p.stderr)
	}
	if n := px.n("PART-OK"); n < 1 || n >= 3 {
		t.Fatalf("killed after %d parts were in; want in the middle of the upload\nstderr:\n%s", n, p.stderr)
	}
	key := s3Key(t, prefix, u)
	if s3Exists(t, key) {
		t.Fatal("the object exists before its upload completed")
	}
	if n := s3OpenUploads(t, prefix+"/"); n != 1 {
		t.Fatalf("%d multipart uploads open after the kill; want the interrupted one", n)
	}

	px.slow.Store(0)
	px.reset()
	sentBefore := srv.BytesSent()
	out, stderr, st := runFetch(t, dir, u+"\n", args...)
	if st != "exit 0" || out != u+"\n" {
		t.Fatalf("rerun: %s %q\n%s", st, out, stderr)
	}
	if got := s3Get(t, key); !bytes.Equal(got, fetchtest.Body("killup", size)) {
		t.Errorf("object: %d bytes, not the server's %d", len(got), size)
	}
	if sent := srv.BytesSent() - sentBefore; sent != 0 {
		t.Errorf("the rerun downloaded %d bytes again; want 0 (the spooled .part was whole)", sent)
	}
	if n := px.n("PART"); n >= 3 {
		t.Errorf("the rerun sent %d parts of 3; want the upload resumed", n)
	}
	if n := s3OpenUploads(t, prefix+"/"); n != 0 {
		t.Errorf("%d multipart uploads left open", n)
	}
	if f := spoolFiles(t, spool); len(f) != 0 {
		t.Errorf("spool files left: %v", f)
	}
}

// TestFetchS3PutErrors: how the store's answers to a Put end a line. A
// retryable one (503 SlowDown) is retried after the backoff without a new
// download; a fatal one (403 AccessDenied) stops the run with exit 2, the
// .part kept; any other (400) fails the line, in --failed, and the run goes
// on. A HEAD's 503 is retried too.
func TestFetchS3PutErrors(t *testing.T) {
	needS3(t)
	srv := fetchtest.New()
	defer srv.Close()
	px := newS3Proxy(t)
	tests := []struct {
		name, code string
		kind       string // the requests answered with the error
		status     int
		times      int // the first PUTs answered with the error
		exit       string
		puts       int
		stored     bool
	}{
		{"retryable", "SlowDown", "PUT", 503, 2, "exit 0", 3, true},
		{"fatal", "AccessDenied", "PUT", 403, 100, "exit 2", 1, false},
		{"final", "InvalidArgument", "PUT", 400, 100, "exit 1", 1, false},
		{"head-retryable", "SlowDown", "HEAD", 503, 2, "exit 0", 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			prefix := s3srv.Prefix(t)
			spool := filepath.Join(dir, "spool")
			u := srv.URL + "/f/puterr-" + tt.name + "?size=5000"
			var n atomic.Int32
			px.mu.Lock()
			px.fail = func(kind string) (int, string) {
				if kind == tt.kind && n.Add(1) <= int32(tt.times) {
					return tt.status, tt.code
				}
				return 0, ""
			}
			px.mu.Unlock()
			px.reset()
			srv.Reset()
			out, stderr, st := runFetch(t, dir, u+"\n", "-q", "-d", "s3://"+s3srv.Bucket+"/"+prefix, "--s3-endpoint", px.URL,
				"--spool", spool, "--retries", "3", "--backoff", "10ms", "--failed", filepath.Join(dir, "failed.txt"))
			if st != tt.exit || px.n("PUT") != tt.puts || srv.TotalRequests() != 1 {
				t.Fatalf("%s after %d PUTs and %d downloads; want %s after %d PUTs and 1 download\nstderr:\n%s",
					st, px.n("PUT"), srv.TotalRequests(), tt.exit, tt.puts, stderr)
			}
			if echoed := out == u+"\n"; echoed != tt.stored || s3Exists(t, s3Key(t, prefix, u)) != tt.stored {
				t.Errorf("echoed %q, object there: %v; want both %v", out, s3Exists(t, s3Key(t, prefix, u)), tt.stored)
			}
			failed, _ := os.ReadFile(filepath.Join(dir, "failed.txt"))
			if inFailed := strings.Contains(string(failed), u); inFailed != (tt.name == "final") {
				t.Errorf("--failed holds the line: %v (%q)", inFailed, failed)
			}
			if tt.name == "fatal" && !strings.Contains(stderr, "access denied") {
				t.Errorf("fatal: the message does not say access denied: %q", stderr)
			}
			if kept := len(spoolFiles(t, spool)) > 0; kept == tt.stored {
				t.Errorf("spooled .part kept: %v; want it kept exactly when not stored", kept)
			}
			for _, secret := range []string{s3srv.Key, s3srv.Secret} {
				if strings.Contains(stderr, secret) || strings.Contains(string(failed), secret) {
					t.Errorf("a credential in the messages or --failed")
				}
			}
		})
	}
	px.mu.Lock()
	px.fail = nil
	px.mu.Unlock()
}

// TestFetchS3CrashResume is TestCrashResume's property with -d s3://: the
// pipeline ckskip | ckfetch -d s3:// | ckmark is killed (SIGKILL, the whole
// process group) at random moments, in downloads and in uploads (small
// files, slow ones, multipart ones sent slowly through the proxy), then run
// once more to its end. After every kill each checkpoint line names an
// object with the server's exact bytes; at the end every object is exact,
// no multipart upload is open and the spool holds no file.
func TestFetchS3CrashResume(t *testing.T) {
	needS3(t)
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rounds := 8
	if testing.Short() {
		rounds = 3
	}
	t.Logf("seed %d (rerun with -crash.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	srv := fetchtest.New()
	defer srv.Close()
	px := newS3Proxy(t)
	px.slow.Store(12 << 20)
	dir := t.TempDir()
	prefix := s3srv.Prefix(t)

	type obj struct {
		line, name string
		size       int64
	}
	var list []obj
	var urls strings.Builder
	for i := range 40 {
		name := fmt.Sprintf("crash-%d", i)
		var size int64
		opts := ""
		switch {
		case i%10 == 0: // 4 multipart files of 2 parts
			size = 6<<20 + int64(rng.IntN(1<<20))
		case i%10 == 1 || i%10 == 2: // slow bodies
			size, opts = 200_000+int64(rng.IntN(200_000)), "&slow=1000000"
		default:
			size = int64(rng.IntN(50_000))
		}
		u := fmt.Sprintf("%s/f/%s?size=%d%s", srv.URL, name, size, opts)
		list = append(list, obj{line: u, name: name, size: size})
		urls.WriteString(u + "\n")
	}
	write(t, filepath.Join(dir, "urls.txt"), urls.String())
	pipeline := "ckskip -c check.txt urls.txt | ckfetch -q -j 4 --backoff 5ms --max-backoff 50ms --stall-timeout 5s" +
		" -d s3://" + s3srv.Bucket + "/" + prefix + " --s3-endpoint " + px.URL + " --spool spool" +
		" --s3-part-size 5M --s3-multipart-threshold 5M | ckmark check.txt"

	exact := func(o obj, when string) {
		t.Helper()
		if got := s3Get(t, s3Key(t, prefix, o.line)); !bytes.Equal(got, fetchtest.Body(o.name, o.size)) {
			t.Fatalf("%s (seed %d): the object of %s has %d bytes, not the server's %d", when, seed, o.line, len(got), o.size)
		}
	}
	byLine := map[string]obj{}
	for _, o := range list {
		byLine[o.line] = o
	}
	checkpoint := func(when string) int {
		t.Helper()
		data, _ := os.ReadFile(filepath.Join(dir, "check.txt"))
		complete := string(data[:bytes.LastIndexByte(data, '\n')+1])
		n := 0
		for _, line := range strings.Split(strings.TrimSuffix(complete, "\n"), "\n") {
			if line == "" {
				continue
			}
			o, ok := byLine[line]
			if !ok {
				t.Fatalf("%s: check.txt has %q, not a line of the list", when, line)
			}
			exact(o, when)
			n++
		}
		return n
	}
	for round := range rounds {
		cmd := exec.Command("sh", "-c", pipeline)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		n := checkpoint(fmt.Sprintf("after kill %d", round+1))
		t.Logf("kill %d: %d checkpoint lines, %d multipart uploads open, %d parts sent so far", round+1, n, s3OpenUploads(t, prefix+"/"), px.n("PART"))
	}
	px.slow.Store(0)
	cmd := exec.Command("sh", "-c", pipeline)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("final run (seed %d): %v\n%s", seed, err, out)
	}
	if n := checkpoint("after the final run"); n != len(list) {
		t.Errorf("the checkpoint has %d lines after the final run; want %d", n, len(list))
	}
	for _, o := range list {
		exact(o, "after the final run")
	}
	if n := s3OpenUploads(t, prefix+"/"); n != 0 {
		t.Errorf("seed %d: %d multipart uploads left open", seed, n)
	}
	if f := spoolFiles(t, filepath.Join(dir, "spool")); len(f) != 0 {
		t.Errorf("seed %d: spool files left: %v", seed, f)
	}
}
