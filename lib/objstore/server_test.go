package objstore_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The S3 server of these tests: SeaweedFS's weed mini, started by TestMain
// with scripts/s3server.sh into a temporary directory and stopped at the
// end, or the server described by the env file CK_S3_ENV=FILE (as the
// script writes it) when that is set. When no server can be had, every test
// that needs one skips with the reason, and TestMain says so loudly on
// stderr; with CK_S3_REQUIRE=1 they fail instead.
var srv struct {
	endpoint, key, secret, bucket string
	root                          string // key prefix of this test run
	skip                          string // why there is no server
}

// buildTime is how long a first build of weed may take on a loaded
// machine: a test run whose -timeout is shorter does not start one.
const buildTime = 30 * time.Minute

func TestMain(m *testing.M) {
	flag.Parse()
	stop := startServer()
	if srv.skip != "" {
		fmt.Fprintf(os.Stderr, "\n*** objstore: SKIPPING THE S3 TESTS: %s ***\n\n", srv.skip)
	}
	code := m.Run()
	if code == 0 && srv.skip == "" {
		if n := openUploads(srv.root); n != 0 {
			fmt.Fprintf(os.Stderr, "objstore: FAIL: %d multipart uploads left open under %s\n", n, srv.root)
			code = 1
		}
	}
	stop()
	os.Exit(code)
}

// startServer fills srv (or srv.skip) and returns the function that stops
// what it started.
func startServer() (stop func()) {
	stop = func() {}
	// The tests see only what they set: no profile, no files of the user's,
	// no instance metadata.
	for _, k := range []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"} {
		os.Unsetenv(k)
	}
	os.Setenv("AWS_CONFIG_FILE", filepath.Join(os.TempDir(), "ck-objstore-no-config"))
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(os.TempDir(), "ck-objstore-no-credentials"))
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	srv.root = "objstore-test-" + randHex(4) + "/"

	envFile := os.Getenv("CK_S3_ENV")
	if envFile == "" {
		script, err := filepath.Abs("../../scripts/s3server.sh")
		if err != nil {
			srv.skip = err.Error()
			return stop
		}
		if err := exec.Command(script, "path").Run(); err != nil {
			if to := flag.Lookup("test.timeout"); to != nil {
				if d, _ := time.ParseDuration(to.Value.String()); d != 0 && d < buildTime {
					srv.skip = fmt.Sprintf("weed is not built yet, and its first build (10 to 30 minutes here) does not fit -timeout %v: run scripts/s3server.sh build once, or go test -timeout 0", d)
					return stop
				}
			}
		}
		dir, err := os.MkdirTemp("", "ck-objstore-s3-")
		if err != nil {
			srv.skip = err.Error()
			return stop
		}
		cmd := exec.Command(script, "start", dir)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "S3_BUCKET=ck-test")
		out, err := cmd.CombinedOutput()
		if err != nil {
			srv.skip = fmt.Sprintf("scripts/s3server.sh start failed (%v): %s", err, strings.TrimSpace(string(out)))
			os.RemoveAll(dir)
			return stop
		}
		envFile = filepath.Join(dir, "s3.env")
		stop = func() {
			if out, err := exec.Command(script, "stop", dir).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "objstore: scripts/s3server.sh stop %s: %v: %s\n", dir, err, out)
			}
			os.RemoveAll(dir)
		}
	}
	env, err := readEnv(envFile)
	if err != nil {
		srv.skip = err.Error()
		return stop
	}
	srv.endpoint, srv.key, srv.secret, srv.bucket = env["S3_ENDPOINT"], env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["S3_BUCKET"]
	if srv.endpoint == "" || srv.key == "" || srv.secret == "" || srv.bucket == "" {
		srv.skip = envFile + " lacks one of S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, S3_BUCKET"
		return stop
	}
	os.Setenv("AWS_ACCESS_KEY_ID", srv.key)
	os.Setenv("AWS_SECRET_ACCESS_KEY", srv.secret)
	os.Setenv("AWS_REGION", "us-east-1")
	return stop
}

// readEnv reads the KEY=VALUE lines of an env file as s3server.sh writes it.
func readEnv(name string) (map[string]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read S3 env file: %w", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && !strings.HasPrefix(k, "export") {
			env[k] = strings.Trim(v, `'"`)
		}
	}
	return env, sc.Err()
}

// needServer skips t, loudly, when there is no S3 server.
func needServer(t *testing.T) {
	t.Helper()
	if srv.skip == "" {
		return
	}
	if os.Getenv("CK_S3_REQUIRE") == "1" {
		t.Fatalf("no S3 server (CK_S3_REQUIRE=1): %s", srv.skip)
	}
	t.Skipf("NO S3 SERVER, NOT TESTED: %s", srv.skip)
}

// rawClient is an S3 client of the tests' own, to look behind the Store.
func rawClient() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(srv.key, srv.secret, ""),
	})
}

// openUploads counts the multipart uploads open under prefix, -1 when they
// cannot be listed.
func openUploads(prefix string) int {
	n := 0
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(srv.bucket), Prefix: aws.String(prefix)}
	for range 100 {
		out, err := rawClient().ListMultipartUploads(context.Background(), in)
		if err != nil {
			return -1
		}
		n += len(out.Uploads)
		if !aws.ToBool(out.IsTruncated) {
			return n
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
	return n
}

// prefix returns a key prefix of t's own, so tests never see each other's
// objects.
func prefix(t *testing.T) string {
	return srv.root + strings.ReplaceAll(t.Name(), "/", "_")
}

// dest returns the s3:// destination of t's prefix.
func dest(t *testing.T) string { return "s3://" + srv.bucket + "/" + prefix(t) }

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// randomFile writes size random bytes to a file in t's temp dir and returns
// it open, with its bytes.
func randomFile(t *testing.T, size int) (*os.File, []byte) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	name := filepath.Join(t.TempDir(), "file.part")
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, b
}

// getObject reads an object back through the raw client.
func getObject(t *testing.T, key string) []byte {
	t.Helper()
	out, err := rawClient().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(srv.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	var b strings.Builder
	if _, err := bufio.NewReader(out.Body).WriteTo(&b); err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return []byte(b.String())
}

// exists reports whether key can be seen by HEAD or by a listing.
func exists(t *testing.T, key string) bool {
	t.Helper()
	c := rawClient()
	_, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(srv.bucket), Key: aws.String(key)})
	var nf interface{ ErrorCode() string }
	head := err == nil
	if err != nil && !(errors.As(err, &nf) && (nf.ErrorCode() == "NotFound" || nf.ErrorCode() == "NoSuchKey")) {
		t.Fatalf("head %s: %v", key, err)
	}
	out, err := c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(srv.bucket), Prefix: aws.String(key)})
	if err != nil {
		t.Fatalf("list %s: %v", key, err)
	}
	listed := false
	for _, o := range out.Contents {
		listed = listed || aws.ToString(o.Key) == key
	}
	return head || listed
}
