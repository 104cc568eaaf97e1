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
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ck-tools/ck/lib/objstore/s3test"
)

// The S3 server of these tests (see s3test): started by TestMain, stopped
// at the end. When there is none, TestMain says so loudly on stderr.
var srv = &s3test.Server{Skip: "not started"}

// buildTime is how long a first build of weed may take on a loaded
// machine: a test run whose -timeout is shorter does not start one.
const buildTime = 30 * time.Minute

func TestMain(m *testing.M) {
	flag.Parse()
	var stop func()
	srv, stop = s3test.Start("objstore", "../../scripts/s3server.sh", "ck-test", buildTime)
	srv.Root += "/"
	if srv.Skip != "" {
		fmt.Fprintf(os.Stderr, "\n*** objstore: SKIPPING THE S3 TESTS: %s ***\n\n", srv.Skip)
	}
	code := m.Run()
	if code == 0 && srv.Skip == "" {
		if n := openUploads(srv.Root); n != 0 {
			fmt.Fprintf(os.Stderr, "objstore: FAIL: %d multipart uploads left open under %s\n", n, srv.Root)
			code = 1
		}
	}
	stop()
	os.Exit(code)
}

// needServer skips t, loudly, when there is no S3 server.
func needServer(t *testing.T) {
	t.Helper()
	srv.Need(t)
}

// rawClient is an S3 client of the tests' own, to look behind the Store.
func rawClient() *s3.Client { return srv.Client() }

// openUploads counts the multipart uploads open under prefix, -1 when they
// cannot be listed.
func openUploads(prefix string) int {
	n := 0
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(srv.Bucket), Prefix: aws.String(prefix)}
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

// prefix returns a key prefix of t's own (see s3test.Server.Prefix).
func prefix(t *testing.T) string { return srv.Prefix(t) }

// dest returns the s3:// destination of t's prefix.
func dest(t *testing.T) string { return "s3://" + srv.Bucket + "/" + prefix(t) }

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
	out, err := rawClient().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String(key)})
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
	_, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String(key)})
	var nf interface{ ErrorCode() string }
	head := err == nil
	if err != nil && !(errors.As(err, &nf) && (nf.ErrorCode() == "NotFound" || nf.ErrorCode() == "NoSuchKey")) {
		t.Fatalf("head %s: %v", key, err)
	}
	out, err := c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(srv.Bucket), Prefix: aws.String(key)})
	if err != nil {
		t.Fatalf("list %s: %v", key, err)
	}
	listed := false
	for _, o := range out.Contents {
		listed = listed || aws.ToString(o.Key) == key
	}
	return head || listed
}
