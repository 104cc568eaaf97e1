// Package s3test gives tests a real S3 server: SeaweedFS's weed mini,
// started with scripts/s3server.sh into a temporary directory, or the
// server of the env file CK_S3_ENV=FILE (as the script writes it). When no
// server can be had, Need skips a test with the reason (fails it with
// CK_S3_REQUIRE=1), and Start's caller says so loudly.
package s3test

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Server is the S3 server of a test binary.
type Server struct {
	Endpoint, Key, Secret, Bucket string
	Root                          string // key prefix of this test run
	Skip                          string // why there is no server; "": there is

	prefixes sync.Map     // of testing.TB to its Prefix
	runs     atomic.Int64 // Prefixes given
}

// Prefix returns the key prefix of t under Root: its name and a number of
// its own, so that tests never see each other's objects, nor a test those
// of its earlier runs in the process (go test -count). The same for every
// call with t.
func (srv *Server) Prefix(t testing.TB) string {
	if p, ok := srv.prefixes.Load(t); ok {
		return p.(string)
	}
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	p, _ := srv.prefixes.LoadOrStore(t, fmt.Sprintf("%s/%s-%d", strings.TrimSuffix(srv.Root, "/"), name, srv.runs.Add(1)))
	return p.(string)
}

// Start fills a Server for the test binary called name ("cmd", "objstore"),
// whose scripts/s3server.sh is script (relative to its package directory),
// with the bucket bucket and a key prefix of name and random hex. The AWS
// environment is cleared first, so the tests see only what they set. When
// weed is not built, its first build is started only if the -timeout of the
// run leaves it build, else the server is skipped; build 0: never. stop
// stops what Start started.
func Start(name, script, bucket string, build time.Duration) (srv *Server, stop func()) {
	srv, stop = &Server{}, func() {}
	for _, k := range []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"} {
		os.Unsetenv(k)
	}
	os.Setenv("AWS_CONFIG_FILE", filepath.Join(os.TempDir(), "ck-"+name+"-no-aws-config"))
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(os.TempDir(), "ck-"+name+"-no-aws-credentials"))
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	b := make([]byte, 4)
	rand.Read(b)
	srv.Root = name + "-test-" + hex.EncodeToString(b)

	envFile := os.Getenv("CK_S3_ENV")
	if envFile == "" {
		script, err := filepath.Abs(script)
		if err != nil {
			srv.Skip = err.Error()
			return srv, stop
		}
		if err := exec.Command(script, "path").Run(); err != nil && !buildFits(build) {
			srv.Skip = fmt.Sprintf("weed is not built yet, and its first build (10 to 30 minutes) is not started here: run scripts/s3server.sh build once (scripts/test.sh does), or go test -timeout 0")
			return srv, stop
		}
		dir, err := os.MkdirTemp("", "ck-"+name+"-s3-")
		if err != nil {
			srv.Skip = err.Error()
			return srv, stop
		}
		cmd := exec.Command(script, "start", dir)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "S3_BUCKET="+bucket)
		if out, err := cmd.CombinedOutput(); err != nil {
			srv.Skip = fmt.Sprintf("scripts/s3server.sh start failed (%v): %s", err, strings.TrimSpace(string(out)))
			os.RemoveAll(dir)
			return srv, stop
		}
		envFile = filepath.Join(dir, "s3.env")
		stop = func() {
			if out, err := exec.Command(script, "stop", dir).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "%s: scripts/s3server.sh stop %s: %v: %s\n", name, dir, err, out)
			}
			os.RemoveAll(dir)
		}
	}
	env, err := ReadEnv(envFile)
	if err != nil {
		srv.Skip = err.Error()
		return srv, stop
	}
	srv.Endpoint, srv.Key, srv.Secret, srv.Bucket = env["S3_ENDPOINT"], env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["S3_BUCKET"]
	if srv.Endpoint == "" || srv.Key == "" || srv.Secret == "" || srv.Bucket == "" {
		srv.Skip = envFile + " lacks one of S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, S3_BUCKET"
		return srv, stop
	}
	os.Setenv("AWS_ACCESS_KEY_ID", srv.Key)
	os.Setenv("AWS_SECRET_ACCESS_KEY", srv.Secret)
	os.Setenv("AWS_REGION", "us-east-1")
	return srv, stop
}

// buildFits reports whether a first build of weed, which may take build, fits
// the -timeout of this test run.
func buildFits(build time.Duration) bool {
	if build == 0 {
		return false
	}
	if to := flag.Lookup("test.timeout"); to != nil {
		if d, _ := time.ParseDuration(to.Value.String()); d != 0 && d < build {
			return false
		}
	}
	return true
}

// ReadEnv reads the KEY=VALUE lines of an env file as s3server.sh writes it.
func ReadEnv(name string) (map[string]string, error) {
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

// Need skips t, loudly, when there is no S3 server; with CK_S3_REQUIRE=1 it
// fails it.
func (srv *Server) Need(t testing.TB) {
	t.Helper()
	if srv.Skip == "" {
		return
	}
	if os.Getenv("CK_S3_REQUIRE") == "1" {
		t.Fatalf("no S3 server (CK_S3_REQUIRE=1): %s", srv.Skip)
	}
	t.Skipf("NO S3 SERVER, NOT TESTED: %s", srv.Skip)
}

// Client is an S3 client of the tests' own, to look behind the code tested.
func (srv *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(srv.Key, srv.Secret, ""),
	})
}
