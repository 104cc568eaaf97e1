package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ck-tools/ck/lib/objstore"
)

const mib = 1 << 20

// small is the options of the multipart tests: 5 MiB parts from 5 MiB on.
var small = objstore.Options{MultipartThreshold: 5 * mib, PartSize: 5 * mib}

func open(t *testing.T, o objstore.Options) *objstore.Store {
	t.Helper()
	needServer(t)
	if o.Endpoint == "" {
		o.Endpoint = srv.Endpoint
	}
	s, err := objstore.Open(context.Background(), dest(t), o)
	if err != nil {
		t.Fatalf("Open(%s): %v", dest(t), err)
	}
	return s
}

func TestPutStatRoundTrip(t *testing.T) {
	s := open(t, objstore.Options{})
	f, want := randomFile(t, 100_000)
	name := "example.org/dir/file name?q=1"
	found, _, err := s.Stat(context.Background(), name)
	if err != nil || found {
		t.Fatalf("Stat before Put = %v, %v; want false, nil", found, err)
	}
	owner := "https://example.org/dir/file%20name?q=1&é=\x01"
	if err := s.Put(context.Background(), name, f, int64(len(want)), owner); err != nil {
		t.Fatalf("Put: %v", err)
	}
	found, got, err := s.Stat(context.Background(), name)
	if err != nil || !found || got != owner {
		t.Fatalf("Stat after Put = %v, %q, %v; want true, %q, nil", found, got, err, owner)
	}
	if s.Key(name) != prefix(t)+"/"+name {
		t.Fatalf("Key(%q) = %q, want %q", name, s.Key(name), prefix(t)+"/"+name)
	}
	if b := getObject(t, s.Key(name)); !bytes.Equal(b, want) {
		t.Fatalf("object has %d bytes that differ from the file's %d", len(b), len(want))
	}
	// An empty file is an object too.
	empty, _ := randomFile(t, 0)
	if err := s.Put(context.Background(), "empty", empty, 0, "u"); err != nil {
		t.Fatalf("Put empty: %v", err)
	}
	if b := getObject(t, s.Key("empty")); len(b) != 0 {
		t.Fatalf("empty object has %d bytes", len(b))
	}
}

func TestPutLongOwner(t *testing.T) {
	s := open(t, objstore.Options{})
	f, want := randomFile(t, 10)
	owner := "https://example.org/" + strings.Repeat("a", 3000)
	if err := s.Put(context.Background(), "long", f, int64(len(want)), owner); err != nil {
		t.Fatalf("Put: %v", err)
	}
	_, got, err := s.Stat(context.Background(), "long")
	if err != nil || got != objstore.Owner(owner) || !strings.HasPrefix(got, "sha256:") {
		t.Fatalf("Stat owner = %q, %v; want %q", got, err, objstore.Owner(owner))
	}
}

func TestPutMultipart(t *testing.T) {
	s := open(t, small)
	f, want := randomFile(t, 12*mib+12345)
	var sent []int32
	defer objstore.SetPartMD5Hook(func(p int32, _ []byte) { sent = append(sent, p) })()
	if err := s.Put(context.Background(), "big", f, int64(len(want)), "https://example.org/big"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if len(sent) != 3 || sent[0] != 1 || sent[2] != 3 {
		t.Fatalf("parts sent = %v, want [1 2 3]", sent)
	}
	if b := getObject(t, s.Key("big")); !bytes.Equal(b, want) {
		t.Fatalf("object has %d bytes that differ from the file's %d", len(b), len(want))
	}
	head, err := rawClient().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String(s.Key("big"))})
	if err != nil {
		t.Fatal(err)
	}
	if etag := aws.ToString(head.ETag); !strings.HasSuffix(strings.Trim(etag, `"`), "-3") {
		t.Fatalf("ETag %s is not that of a 3-part upload", etag)
	}
	if _, owner, _ := s.Stat(context.Background(), "big"); owner != "https://example.org/big" {
		t.Fatalf("owner = %q", owner)
	}
	if n := openUploads(prefix(t)); n != 0 {
		t.Fatalf("%d uploads open after Put", n)
	}
}

// TestPutNotVisibleBeforeWhole looks for the object from another goroutine
// after each part of a multipart upload is in, while Put waits.
func TestPutNotVisibleBeforeWhole(t *testing.T) {
	s := open(t, small)
	f, want := randomFile(t, 12*mib)
	key := s.Key("slow")
	look := make(chan int32)
	seen := make(chan string)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for p := range look {
			found, _, err := s.Stat(context.Background(), "slow")
			switch {
			case err != nil:
				seen <- "Stat: " + err.Error()
			case found || exists(t, key):
				seen <- "object visible after part " + string('0'+rune(p))
			default:
				seen <- ""
			}
		}
	}()
	var problems []string
	defer objstore.SetAfterPartHook(func(p int32) {
		look <- p
		if m := <-seen; m != "" {
			problems = append(problems, m)
		}
	})()
	err := s.Put(context.Background(), "slow", f, int64(len(want)), "u")
	close(look)
	wg.Wait()
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if len(problems) != 0 {
		t.Fatalf("while the upload was not complete: %v", problems)
	}
	if !exists(t, key) {
		t.Fatal("object not visible after Put returned")
	}
}

// interrupt runs a Put of a 12 MiB file whose context is cancelled once
// part 1 is in, and checks it leaves one upload open and the object as it
// was (absent, or with its earlier bytes).
func interrupt(t *testing.T, s *objstore.Store, name string, f *os.File, size int64) {
	t.Helper()
	var before []byte
	existed := exists(t, s.Key(name))
	if existed {
		before = getObject(t, s.Key(name))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	restore := objstore.SetAfterPartHook(func(p int32) {
		if p == 1 {
			cancel()
		}
	})
	err := s.Put(ctx, name, f, size, "u")
	restore()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Put = %v, want context.Canceled", err)
	}
	switch {
	case !existed && exists(t, s.Key(name)):
		t.Fatal("object visible after an interrupted upload")
	case existed && !bytes.Equal(getObject(t, s.Key(name)), before):
		t.Fatal("object changed by an interrupted upload")
	}
	if n := openUploads(prefix(t)); n != 1 {
		t.Fatalf("%d uploads open after the interrupted Put, want 1", n)
	}
}

func TestPutResumesInterruptedUpload(t *testing.T) {
	for _, newRun := range []bool{false, true} {
		name := map[bool]string{false: "same_store", true: "next_run"}[newRun]
		t.Run(name, func(t *testing.T) {
			s := open(t, small)
			f, want := randomFile(t, 12*mib)
			interrupt(t, s, "x", f, int64(len(want)))
			if newRun {
				s = open(t, small) // a new run finds the upload by listing
			}
			var sent []int32
			defer objstore.SetPartMD5Hook(func(p int32, _ []byte) { sent = append(sent, p) })()
			if err := s.Put(context.Background(), "x", f, int64(len(want)), "u"); err != nil {
				t.Fatalf("Put after interrupt: %v", err)
			}
			if len(sent) != 2 || sent[0] != 2 || sent[1] != 3 {
				t.Fatalf("parts sent on resume = %v, want [2 3] (part 1 was in)", sent)
			}
			if b := getObject(t, s.Key("x")); !bytes.Equal(b, want) {
				t.Fatal("resumed object differs from the file")
			}
			if n := openUploads(prefix(t)); n != 0 {
				t.Fatalf("%d uploads open after the resumed Put", n)
			}
		})
	}
}

// TestPutResumeChangedFile: a file whose bytes changed since the
// interrupted upload gets every part sent again, and the object is the new
// file.
func TestPutResumeChangedFile(t *testing.T) {
	s := open(t, small)
	f, want := randomFile(t, 12*mib)
	interrupt(t, s, "x", f, int64(len(want)))
	g, want2 := randomFile(t, 11*mib)
	var sent []int32
	defer objstore.SetPartMD5Hook(func(p int32, _ []byte) { sent = append(sent, p) })()
	if err := s.Put(context.Background(), "x", g, int64(len(want2)), "u"); err != nil {
		t.Fatal(err)
	}
	if len(sent) != 3 {
		t.Fatalf("parts sent = %v, want all 3", sent)
	}
	if b := getObject(t, s.Key("x")); !bytes.Equal(b, want2) {
		t.Fatal("object differs from the new file")
	}
	if n := openUploads(prefix(t)); n != 0 {
		t.Fatalf("%d uploads open", n)
	}
}

func TestAbortOpenUploads(t *testing.T) {
	s := open(t, small)
	f, want := randomFile(t, 12*mib)
	interrupt(t, s, "x", f, int64(len(want)))
	if err := s.AbortOpenUploads(context.Background()); err != nil {
		t.Fatalf("AbortOpenUploads: %v", err)
	}
	if n := openUploads(prefix(t)); n != 0 {
		t.Fatalf("%d uploads open after AbortOpenUploads", n)
	}
	// The next Put starts afresh.
	if err := s.Put(context.Background(), "x", f, int64(len(want)), "u"); err != nil {
		t.Fatal(err)
	}
	if b := getObject(t, s.Key("x")); !bytes.Equal(b, want) {
		t.Fatal("object differs from the file")
	}
}

// TestLeftoverAbortedBySmallPutAndStat: an upload left by an earlier run is
// aborted by the next run's single PUT of that name (the file is small now),
// and by a Stat that finds the object already stored.
func TestLeftoverAbortedBySmallPutAndStat(t *testing.T) {
	s := open(t, small)
	big, want := randomFile(t, 12*mib)
	interrupt(t, s, "a", big, int64(len(want)))
	s = open(t, small)
	f, wantSmall := randomFile(t, 1000)
	if err := s.Put(context.Background(), "a", f, int64(len(wantSmall)), "u"); err != nil {
		t.Fatal(err)
	}
	if n := openUploads(prefix(t)); n != 0 {
		t.Fatalf("%d uploads open after a small Put of the name", n)
	}
	if b := getObject(t, s.Key("a")); !bytes.Equal(b, wantSmall) {
		t.Fatal("object differs from the small file")
	}

	// A --force run killed while storing "a" again: the next run finds "a"
	// with a HEAD and will not Put it, so that Stat aborts the leftover.
	interrupt(t, s, "a", big, int64(len(want)))
	s = open(t, small)
	found, _, err := s.Stat(context.Background(), "a")
	if err != nil || !found {
		t.Fatalf("Stat = %v, %v", found, err)
	}
	if n := openUploads(prefix(t)); n != 0 {
		t.Fatalf("%d uploads open after Stat found the object", n)
	}
}

// TestServerRefusesBadDigest: a Content-MD5 that does not match the bytes
// (a part's, and a single PUT's) is refused by the server, the object does
// not appear, and the error is BadDigest, retryable.
func TestServerRefusesBadDigest(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		part int32
	}{
		{"part2", 12 * mib, 2},
		{"single", 1000, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, small)
			f, want := randomFile(t, tc.size)
			restore := objstore.SetPartMD5Hook(func(p int32, sum []byte) {
				if p == tc.part {
					sum[0] ^= 0xff
				}
			})
			err := s.Put(context.Background(), "x", f, int64(len(want)), "u")
			restore()
			var e *objstore.Error
			if !errors.As(err, &e) || e.Code != "BadDigest" || e.Status != 400 || e.Class != objstore.Retryable {
				t.Fatalf("Put with a wrong Content-MD5 = %v, want a retryable 400 BadDigest", err)
			}
			if exists(t, s.Key("x")) {
				t.Fatal("object visible after the server refused its bytes")
			}
			// The retry, with the right digest, resumes and stores it.
			if err := s.Put(context.Background(), "x", f, int64(len(want)), "u"); err != nil {
				t.Fatalf("retried Put: %v", err)
			}
			if b := getObject(t, s.Key("x")); !bytes.Equal(b, want) {
				t.Fatal("object differs from the file")
			}
			if n := openUploads(prefix(t)); n != 0 {
				t.Fatalf("%d uploads open", n)
			}
		})
	}
}

func TestOpenFatal(t *testing.T) {
	needServer(t)
	badSecret := "Wrong" + randHex(16)
	badKey := "NOSUCHKEY" + randHex(8)
	for _, tc := range []struct {
		name, dest, key, secret string
		want                    []string
	}{
		{"missing bucket", "s3://no-such-bucket-" + randHex(4) + "/p", srv.Key, srv.Secret, []string{"NoSuchBucket", "does not exist", "create it"}},
		{"wrong secret", dest(t), srv.Key, badSecret, []string{"403", "SignatureDoesNotMatch", "AWS_SECRET_ACCESS_KEY"}},
		{"unknown key", dest(t), badKey, badSecret, []string{"403", "InvalidAccessKeyId", "AWS_ACCESS_KEY_ID"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_ACCESS_KEY_ID", tc.key)
			t.Setenv("AWS_SECRET_ACCESS_KEY", tc.secret)
			_, err := objstore.Open(context.Background(), tc.dest, objstore.Options{Endpoint: srv.Endpoint})
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if !objstore.IsFatal(err) {
				t.Errorf("error is not fatal: %v", err)
			}
			msg := err.Error()
			t.Logf("message: %s", msg)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
			for _, secret := range []string{tc.key, tc.secret, srv.Secret} {
				if strings.Contains(msg, secret) {
					t.Errorf("message %q contains the credential %q", msg, secret)
				}
			}
		})
	}
}

func TestOpenUnreachable(t *testing.T) {
	needServer(t) // for the credentials in the environment
	_, err := objstore.Open(context.Background(), dest(t), objstore.Options{Endpoint: "http://127.0.0.1:1"})
	t.Logf("message: %v", err)
	if err == nil || !objstore.IsFatal(err) || !strings.Contains(err.Error(), "right endpoint") {
		t.Fatalf("Open of a closed port = %v, want a fatal error naming the endpoint", err)
	}
}

// TestOpenFromConfigFiles: endpoint, region and credentials from a profile
// of ~/.aws/config and ~/.aws/credentials, nothing in the environment.
func TestOpenFromConfigFiles(t *testing.T) {
	needServer(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	creds := filepath.Join(dir, "credentials")
	os.WriteFile(cfg, []byte("[profile ck]\nregion = us-east-1\nendpoint_url = "+srv.Endpoint+"\n"), 0o600)
	os.WriteFile(creds, []byte("[ck]\naws_access_key_id = "+srv.Key+"\naws_secret_access_key = "+srv.Secret+"\n"), 0o600)
	t.Setenv("AWS_CONFIG_FILE", cfg)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	os.Unsetenv("AWS_ACCESS_KEY_ID")
	os.Unsetenv("AWS_SECRET_ACCESS_KEY")
	t.Setenv("AWS_PROFILE", "ck")
	s, err := objstore.Open(context.Background(), dest(t), objstore.Options{})
	if err != nil {
		t.Fatalf("Open with a profile: %v", err)
	}
	f, want := randomFile(t, 10)
	if err := s.Put(context.Background(), "p", f, int64(len(want)), "u"); err != nil {
		t.Fatal(err)
	}

	// And the endpoint from AWS_ENDPOINT_URL_S3, credentials from the env.
	t.Setenv("AWS_PROFILE", "")
	os.Unsetenv("AWS_PROFILE")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.Key)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.Secret)
	s, err = objstore.Open(context.Background(), dest(t), objstore.Options{})
	if err != nil {
		t.Fatalf("Open with AWS_ENDPOINT_URL_S3: %v", err)
	}
	if found, _, err := s.Stat(context.Background(), "p"); err != nil || !found {
		t.Fatalf("Stat = %v, %v", found, err)
	}
}

// TestObjectErrorIsFinal: a 4xx about one object (a key too long) fails that
// object only, and the store goes on.
func TestObjectErrorIsFinal(t *testing.T) {
	s := open(t, objstore.Options{})
	f, want := randomFile(t, 10)
	err := s.Put(context.Background(), strings.Repeat("k", 2000), f, int64(len(want)), "u")
	if c, ok := objstore.ClassOf(err); !ok || c != objstore.Final {
		t.Fatalf("Put with a 2000-byte key = %v (class %v), want a final error", err, c)
	}
	if err := s.Put(context.Background(), "ok", f, int64(len(want)), "u"); err != nil {
		t.Fatalf("Put after a final error: %v", err)
	}
}

// TestPutMultipartMemory: parts are streamed from the file, not buffered:
// storing a 30 MiB file in six 5 MiB parts allocates less than one part.
func TestPutMultipartMemory(t *testing.T) {
	s := open(t, small)
	f, want := randomFile(t, 30*mib)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := s.Put(context.Background(), "mem", f, int64(len(want)), "u"); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("Put of %d bytes allocated %d bytes", len(want), alloc)
	if alloc >= 5*mib {
		t.Fatalf("Put of a 30 MiB file allocated %d bytes, want less than one 5 MiB part", alloc)
	}
	if b := getObject(t, s.Key("mem")); !bytes.Equal(b, want) {
		t.Fatal("object differs from the file")
	}
}
