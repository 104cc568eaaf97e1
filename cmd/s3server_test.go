package cmd_test

// The S3 server of fetch_s3_test.go: SeaweedFS's weed mini, started around
// the tests with scripts/s3server.sh (as lib/objstore's tests do), or the
// one of the env file CK_S3_ENV=FILE. When none can be had, the S3 tests
// skip, loudly on stderr; with CK_S3_REQUIRE=1 they fail.

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ck-tools/ck/lib/objstore/s3test"
)

var s3srv = &s3test.Server{Skip: "not started"}

// s3Main runs the tests between the start and the stop of the server.
type s3Main struct{ m *testing.M }

func (s s3Main) Run() int {
	flag.Parse()
	if !wantsS3() {
		s3srv.Skip = "no S3 test selected by -run"
		return s.m.Run()
	}
	stop := startS3()
	defer stop()
	if s3srv.Skip != "" {
		fmt.Fprintf(os.Stderr, "\n*** cmd: SKIPPING THE S3 TESTS (ckfetch -d s3://): %s ***\n\n", s3srv.Skip)
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
	s3srv, stop = s3test.Start("cmd", "../scripts/s3server.sh", "ck-cmd-test", 0)
	return stop
}

// needS3 skips t, loudly, when there is no S3 server.
func needS3(t *testing.T) {
	t.Helper()
	s3srv.Need(t)
}

// s3Client is the tests' own client, to look behind ckfetch.
func s3Client() *s3.Client { return s3srv.Client() }
