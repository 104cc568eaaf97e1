// End-to-end tests of the three tools' contracts, in testscript form: each
// script in testdata/script drives the real binaries (this test binary,
// re-executed under each tool's name).
package cmd_test

import (
	"bytes"
	"flag"
	"os"
	"path"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/fetch"
	"github.com/ck-tools/ck/lib/fetchtest"
	"github.com/ck-tools/ck/lib/mark"
	"github.com/ck-tools/ck/lib/outname"
	"github.com/ck-tools/ck/lib/skip"
)

var update = flag.Bool("u", false, "update testscript files with the actual output")

func TestMain(m *testing.M) {
	// s3Main starts the S3 server of fetch_s3_test.go around the tests (in
	// the test process only, not in the tools testscript runs).
	testscript.Main(s3Main{m}, map[string]func(){
		"ckskip":  func() { os.Exit(cli.Main(skip.Main)) },
		"ckfetch": func() { os.Exit(cli.Main(fetch.Main)) },
		"ckmark":  func() { os.Exit(cli.Main(mark.Main)) },
	})
}

type serverKey struct{}

// TestScripts runs testdata/script/*.txtar. Each script gets its own
// misbehaving HTTP server on 127.0.0.1 (lib/fetchtest), its base URL in
// $SERVER, and the commands below to look at what it saw.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		UpdateScripts:       *update,
		Setup: func(env *testscript.Env) error {
			srv := fetchtest.New()
			env.Setenv("SERVER", srv.URL)
			name, err := outname.FromURL(srv.URL)
			if err != nil {
				return err
			}
			env.Setenv("HOSTDIR", path.Dir(name)) // where ckfetch puts its files by default
			env.Values[serverKey{}] = srv
			env.Defer(srv.Close)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"requests": cmdRequests,
			"body":     cmdBody,
			"sent":     cmdSent,
			"expand":   cmdExpand,
			"reset":    func(ts *testscript.TestScript, neg bool, args []string) { server(ts).Reset() },
		},
	})
}

func server(ts *testscript.TestScript) *fetchtest.Server {
	return ts.Value(serverKey{}).(*fetchtest.Server)
}

// requests [URL] N: the server got exactly N requests (for URL: a path and
// query), or with "ranged URL N", N of them with a Range header.
func cmdRequests(ts *testscript.TestScript, neg bool, args []string) {
	srv := server(ts)
	var got int
	switch len(args) {
	case 1:
		got = srv.TotalRequests()
	case 2:
		got = srv.Requests(args[0])
	case 3:
		if args[0] != "ranged" {
			ts.Fatalf("usage: requests [[ranged] URL] N")
		}
		got = srv.URLStats(args[1]).Ranged
	default:
		ts.Fatalf("usage: requests [[ranged] URL] N")
	}
	want, err := strconv.Atoi(args[len(args)-1])
	ts.Check(err)
	if (got == want) == neg {
		ts.Fatalf("server saw %d requests %v; want %s%d", got, args[:len(args)-1], map[bool]string{true: "not "}[neg], want)
	}
}

// sent [URL] N: the server sent at most N body bytes (for URL).
func cmdSent(ts *testscript.TestScript, neg bool, args []string) {
	srv := server(ts)
	var got int64
	switch len(args) {
	case 1:
		got = srv.BytesSent()
	case 2:
		got = srv.URLStats(args[0]).Bytes
	default:
		ts.Fatalf("usage: sent [URL] MAXBYTES")
	}
	limit, err := strconv.ParseInt(args[len(args)-1], 10, 64)
	ts.Check(err)
	if (got <= limit) == neg {
		ts.Fatalf("server sent %d body bytes; want at most %d", got, limit)
	}
}

// body FILE NAME SIZE: FILE holds exactly the bytes the server sends for
// /f/NAME?size=SIZE.
func cmdBody(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: body FILE NAME SIZE")
	}
	size, err := strconv.ParseInt(args[2], 10, 64)
	ts.Check(err)
	got, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	if bytes.Equal(got, fetchtest.Body(args[1], size)) == neg {
		ts.Fatalf("%s: %d bytes, not the server's %d bytes of %s", args[0], len(got), size, args[1])
	}
}

// expand IN OUT: OUT is IN with $VARS of the script's environment expanded
// (URL lists need the server's address).
func cmdExpand(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: expand IN OUT")
	}
	in := ts.ReadFile(args[0])
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(os.Expand(in, ts.Getenv)), 0o666))
}
