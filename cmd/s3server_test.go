package cmd_test

// The S3 server of fetch_s3_test.go: SeaweedFS's weed mini, started around
// the tests with scripts/s3server.sh (as lib/objstore's tests do), or the
// one of the env file CK_S3_ENV=FILE. When none can be had, the S3 tests
// skip, loudly on stderr; with CK_S3_REQUIRE=1 they fail.

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
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

var s3srv struct {
	endpoint, key, secret, bucket string
	root                          string // key prefix of this test run
	skip                          string // why there is no server
}

// s3Main runs the tests between the start and the stop of the server.
type s3Main struct{ m *testing.M }

func (s s3Main) Run() int {
	flag.Parse()
	if !wantsS3() {
		s3srv.skip = "no S3 test selected by -run"
		return s.m.Run()
	}
	stop := startS3()
	defer stop()
	if s3srv.skip != "" {
		fmt.Fprintf(os.Stderr, "\n*** cmd: SKIPPING THE S3 TESTS (ckfetch -d s3://): %s ***\n\n", s3srv.skip)
	}
	return s.m.Run()
}

// wantsS3 reports whether -run may select a TestFetchS3 test: the server
// costs seconds to start, which a run of other tests should not pay.
func wantsS3() bool {
	f := flag.Lookup("test.run")
	if f == nil || f.Value.String() == "" {
		return true
	}
	return strings.Contains(f.Value.String(), "S3") || strings.Contains(f.Value.String(), "s3")
}

func startS3() (stop func()) {
	stop = func() {}
	for _, k := range []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"} {
		os.Unsetenv(k)
	}
	os.Setenv("AWS_CONFIG_FILE", filepath.Join(os.TempDir(), "ck-cmd-no-aws-config"))
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(os.TempDir(), "ck-cmd-no-aws-credentials"))
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	b := make([]byte, 4)
	rand.Read(b)
	s3srv.root = "cmd-test-" + hex.EncodeToString(b)

	envFile := os.Getenv("CK_S3_ENV")
	if envFile == "" {
		script, err := filepath.Abs("../scripts/s3server.sh")
		if err != nil {
			s3srv.skip = err.Error()
			return stop
		}
		if err := exec.Command(script, "path").Run(); err != nil {
			s3srv.skip = "weed is not built: run scripts/s3server.sh build once (scripts/test.sh does)"
			return stop
		}
		dir, err := os.MkdirTemp("", "ck-cmd-s3-")
		if err != nil {
			s3srv.skip = err.Error()
			return stop
		}
		cmd := exec.Command(script, "start", dir)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "S3_BUCKET=ck-cmd-test")
		if out, err := cmd.CombinedOutput(); err != nil {
			s3srv.skip = fmt.Sprintf("scripts/s3server.sh start failed (%v): %s", err, strings.TrimSpace(string(out)))
			os.RemoveAll(dir)
			return stop
		}
		envFile = filepath.Join(dir, "s3.env")
		stop = func() {
			if out, err := exec.Command(script, "stop", dir).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "cmd: scripts/s3server.sh stop %s: %v: %s\n", dir, err, out)
			}
			os.RemoveAll(dir)
		}
	}
	env, err := readS3Env(envFile)
	if err != nil {
		s3srv.skip = err.Error()
		return stop
	}
	s3srv.endpoint, s3srv.key, s3srv.secret, s3srv.bucket = env["S3_ENDPOINT"], env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["S3_BUCKET"]
	if s3srv.endpoint == "" || s3srv.key == "" || s3srv.secret == "" || s3srv.bucket == "" {
		s3srv.skip = envFile + " lacks one of S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, S3_BUCKET"
		return stop
	}
	os.Setenv("AWS_ACCESS_KEY_ID", s3srv.key)
	os.Setenv("AWS_SECRET_ACCESS_KEY", s3srv.secret)
	os.Setenv("AWS_REGION", "us-east-1")
	return stop
}

func readS3Env(name string) (map[string]string, error) {
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

// needS3 skips t, loudly, when there is no S3 server.
func needS3(t *testing.T) {
	t.Helper()
	if s3srv.skip == "" {
		return
	}
	if os.Getenv("CK_S3_REQUIRE") == "1" {
		t.Fatalf("no S3 server (CK_S3_REQUIRE=1): %s", s3srv.skip)
	}
	t.Skipf("NO S3 SERVER, NOT TESTED: %s", s3srv.skip)
}

// s3Client is the tests' own client, to look behind ckfetch.
func s3Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s3srv.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s3srv.key, s3srv.secret, ""),
	})
}
