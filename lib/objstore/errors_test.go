package objstore_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ck-tools/ck/lib/objstore"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
		want   objstore.Class
	}{
		{503, "SlowDown", objstore.Retryable},
		{500, "InternalError", objstore.Retryable},
		{502, "", objstore.Retryable},
		{0, "", objstore.Retryable},
		{408, "", objstore.Retryable},
		{429, "", objstore.Retryable},
		{400, "RequestTimeout", objstore.Retryable},
		{400, "BadDigest", objstore.Retryable},
		{404, "NoSuchUpload", objstore.Retryable},
		{403, "AccessDenied", objstore.Fatal},
		{403, "Forbidden", objstore.Fatal},
		{403, "InvalidAccessKeyId", objstore.Fatal},
		{403, "SignatureDoesNotMatch", objstore.Fatal},
		{400, "ExpiredToken", objstore.Fatal},
		{404, "NoSuchBucket", objstore.Fatal},
		{301, "PermanentRedirect", objstore.Fatal},
		{400, "AuthorizationHeaderMalformed", objstore.Fatal},
		{400, "KeyTooLongError", objstore.Final},
		{400, "EntityTooLarge", objstore.Final},
		{400, "InvalidDigest", objstore.Final},
		{400, "", objstore.Final},
		{404, "NoSuchKey", objstore.Final},
	} {
		if got := objstore.Classify(tc.status, tc.code); got != tc.want {
			t.Errorf("Classify(%d, %q) = %v, want %v", tc.status, tc.code, got, tc.want)
		}
	}
}

func TestOwnerEncoding(t *testing.T) {
	for _, u := range []string{
		"https://example.org/a%20b?c=d",
		"http://h/\x00\x01 \x7f\xff/é",
		"",
		"%",
	} {
		enc := objstore.EncodeOwner(u)
		for i := 0; i < len(enc); i++ {
			if enc[i] <= ' ' || enc[i] > '~' {
				t.Errorf("EncodeOwner(%q) = %q has byte %#x", u, enc, enc[i])
			}
		}
		if got := objstore.DecodeOwner(enc); got != u {
			t.Errorf("DecodeOwner(EncodeOwner(%q)) = %q", u, got)
		}
	}
	long := strings.Repeat("é", 400) // 800 bytes, 2400 escaped
	if o := objstore.Owner(long); !strings.HasPrefix(o, "sha256:") || len(o) != 7+64 {
		t.Errorf("Owner of a long URL = %q, want sha256:HEX", o)
	}
	if o := objstore.Owner("https://example.org/x"); o != "https://example.org/x" {
		t.Errorf("Owner of a short URL = %q", o)
	}
}

func TestPathStyle(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		want     bool
	}{
		{"http://127.0.0.1:8333", true},
		{"http://[::1]:9000", true},
		{"http://localhost:9000", true},
		{"http://minio:9000", true},
		{"https://s3.example.com", false},
		{"https://storage.googleapis.com", false},
	} {
		if got := objstore.NeedsPathStyle(tc.endpoint); got != tc.want {
			t.Errorf("NeedsPathStyle(%q) = %v, want %v", tc.endpoint, got, tc.want)
		}
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct{ in, bucket, prefix string }{
		{"s3://b", "b", ""},
		{"s3://b/", "b", ""},
		{"s3://b/p/q/", "b", "p/q"},
	} {
		b, p, err := objstore.ParseURL(tc.in)
		if err != nil || b != tc.bucket || p != tc.prefix {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", tc.in, b, p, err, tc.bucket, tc.prefix)
		}
	}
	for _, in := range []string{"s3://", "s3:///p", "http://b/p", "/tmp/x"} {
		if _, _, err := objstore.ParseURL(in); err == nil {
			t.Errorf("ParseURL(%q) succeeded", in)
		}
	}
}

// fakeS3 answers the two listings Open makes with empty lists, and every
// PUT with the status and S3 error code given.
func fakeS3(t *testing.T, status int, code string) (*httptest.Server, *atomic.Int32) {
	var puts atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "GET" && r.URL.Query().Has("uploads"):
			w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult><Bucket>b</Bucket><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>`))
		case r.Method == "GET":
			w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>`))
		case r.Method == "PUT":
			puts.Add(1)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(status)
			w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>` + code + `</Code><Message>try later, AKIAFAKEFAKEFAKE</Message></Error>`))
		default:
			http.Error(w, "unexpected", 400)
		}
	})
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s, &puts
}

func fakeEnv(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fakeSecretFakeSecretFakeSecret")
	t.Setenv("AWS_REGION", "us-east-1")
}

func smallFile(t *testing.T) *os.File {
	name := filepath.Join(t.TempDir(), "f")
	os.WriteFile(name, []byte("hello"), 0o600)
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestPutRetryableAnswers: 503 SlowDown and 500 are retryable, and Put
// sends one request for them (the caller's backoff retries).
func TestPutRetryableAnswers(t *testing.T) {
	fakeEnv(t)
	for _, tc := range []struct {
		status int
		code   string
		class  objstore.Class
	}{
		{503, "SlowDown", objstore.Retryable},
		{500, "InternalError", objstore.Retryable},
		{400, "EntityTooLarge", objstore.Final},
		{403, "AccessDenied", objstore.Fatal},
	} {
		t.Run(tc.code, func(t *testing.T) {
			srv, puts := fakeS3(t, tc.status, tc.code)
			s, err := objstore.Open(context.Background(), "s3://b/p", objstore.Options{Endpoint: srv.URL})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			err = s.Put(context.Background(), "n", smallFile(t), 5, "u")
			if c, _ := objstore.ClassOf(err); c != tc.class {
				t.Fatalf("Put against %d %s = %v (class %v), want %v", tc.status, tc.code, err, c, tc.class)
			}
			// The fake server echoes the access key in its message, as some
			// servers do: it must not reach the error text.
			if !strings.Contains(err.Error(), tc.code) || strings.Contains(err.Error(), "AKIAFAKE") || !strings.Contains(err.Error(), "[REDACTED]") {
				t.Errorf("message %q: want the code, the access key redacted", err)
			}
			if n := puts.Load(); n != 1 {
				t.Errorf("%d PUT requests, want 1 (no retries inside)", n)
			}
		})
	}
}

// TestPutConnectionRefused: a server gone after Open gives a retryable
// error.
func TestPutConnectionRefused(t *testing.T) {
	fakeEnv(t)
	srv, _ := fakeS3(t, 200, "")
	s, err := objstore.Open(context.Background(), "s3://b/p", objstore.Options{Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	err = s.Put(context.Background(), "n", smallFile(t), 5, "u")
	if !objstore.IsRetryable(err) {
		t.Fatalf("Put to a closed server = %v, want retryable", err)
	}
}

func TestOpenBadDestination(t *testing.T) {
	fakeEnv(t)
	for _, d := range []string{"s3://", "http://b/p"} {
		_, err := objstore.Open(context.Background(), d, objstore.Options{Endpoint: "http://127.0.0.1:1"})
		if !objstore.IsFatal(err) {
			t.Errorf("Open(%q) = %v, want fatal", d, err)
		}
	}
	_, err := objstore.Open(context.Background(), "s3://b/p", objstore.Options{Endpoint: "127.0.0.1:9000"})
	if !objstore.IsFatal(err) || !strings.Contains(err.Error(), "not an http") {
		t.Errorf("Open with endpoint without scheme = %v", err)
	}
}

// TestOpenFollowsBucketRegion: with no region configured, a wrong-region
// answer that names the bucket's region (as AWS sends it) is asked again
// there, and later requests are signed for that region.
func TestOpenFollowsBucketRegion(t *testing.T) {
	fakeEnv(t)
	os.Unsetenv("AWS_REGION")
	var scopes []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		scopes = append(scopes, auth)
		if !strings.Contains(auth, "/eu-west-1/s3/") {
			w.Header().Set("X-Amz-Bucket-Region", "eu-west-1")
			w.WriteHeader(301)
			w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>PermanentRedirect</Code><Message>wrong region</Message></Error>`))
			return
		}
		switch {
		case r.Method == "GET" && r.URL.Query().Has("uploads"):
			w.Write([]byte(`<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>`))
		case r.Method == "GET":
			w.Write([]byte(`<ListBucketResult><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>`))
		case r.Method == "HEAD":
			w.WriteHeader(404)
		}
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	s, err := objstore.Open(context.Background(), "s3://b/p", objstore.Options{Endpoint: srv.URL})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if found, _, err := s.Stat(context.Background(), "x"); err != nil || found {
		t.Fatalf("Stat = %v, %v; want not found", found, err)
	}
	if len(scopes) != 4 {
		t.Fatalf("%d requests, want 4 (list, list again in eu-west-1, uploads, head)", len(scopes))
	}
	// And an explicit region is not second-guessed: the redirect is fatal.
	_, err = objstore.Open(context.Background(), "s3://b/p", objstore.Options{Endpoint: srv.URL, Region: "us-west-2"})
	if !objstore.IsFatal(err) || !strings.Contains(err.Error(), "AWS_REGION") {
		t.Fatalf("Open with the wrong explicit region = %v, want fatal, naming AWS_REGION", err)
	}
}

// TestMultipartFinalErrorAborts: a part the server refuses for good (a
// 4xx no retry can fix) aborts its upload, so nothing is left open; a
// retryable refusal keeps it, for the retry to resume.
func TestMultipartFinalErrorAborts(t *testing.T) {
	fakeEnv(t)
	for _, tc := range []struct {
		status int
		code   string
		aborts int32
	}{
		{400, "EntityTooLarge", 1},
		{503, "SlowDown", 0},
	} {
		t.Run(tc.code, func(t *testing.T) {
			var aborts atomic.Int32
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				q := r.URL.Query()
				switch {
				case r.Method == "GET" && q.Has("uploads"):
					w.Write([]byte(`<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>`))
				case r.Method == "GET":
					w.Write([]byte(`<ListBucketResult><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>`))
				case r.Method == "POST" && q.Has("uploads"):
					w.Write([]byte(`<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>p/n</Key><UploadId>U1</UploadId></InitiateMultipartUploadResult>`))
				case r.Method == "PUT" && q.Get("uploadId") == "U1":
					io.Copy(io.Discard, r.Body)
					w.WriteHeader(tc.status)
					w.Write([]byte(`<Error><Code>` + tc.code + `</Code><Message>no</Message></Error>`))
				case r.Method == "DELETE" && q.Get("uploadId") == "U1":
					aborts.Add(1)
					w.WriteHeader(204)
				default:
					http.Error(w, "unexpected", 400)
				}
			})
			srv := httptest.NewServer(h)
			defer srv.Close()
			s, err := objstore.Open(context.Background(), "s3://b/p", objstore.Options{Endpoint: srv.URL, MultipartThreshold: 5 << 20, PartSize: 5 << 20})
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Join(t.TempDir(), "f")
			os.WriteFile(name, make([]byte, 6<<20), 0o600)
			f, _ := os.Open(name)
			defer f.Close()
			err = s.Put(context.Background(), "n", f, 6<<20, "u")
			if !strings.Contains(err.Error(), tc.code) {
				t.Fatalf("Put = %v, want %s", err, tc.code)
			}
			if n := aborts.Load(); n != tc.aborts {
				t.Fatalf("%d aborts after %s, want %d", n, tc.code, tc.aborts)
			}
			// What is still open, AbortOpenUploads aborts.
			if err := s.AbortOpenUploads(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := aborts.Load(); n != 1 {
				t.Fatalf("%d aborts in all, want 1", n)
			}
		})
	}
}
