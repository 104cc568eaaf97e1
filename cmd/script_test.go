// End-to-end tests of the three tools' contracts, in testscript form: each
// script in testdata/script drives the real binaries (this test binary,
// re-executed under each tool's name).
package cmd_test

import (
	"flag"
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/fetch"
	"github.com/ck-tools/ck/lib/fetchtest"
	"github.com/ck-tools/ck/lib/mark"
	"github.com/ck-tools/ck/lib/skip"
)

var update = flag.Bool("u", false, "update testscript files with the actual output")

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"ckskip":  func() { os.Exit(cli.Main(skip.Main)) },
		"ckfetch": func() { os.Exit(cli.Main(fetch.Main)) },
		"ckmark":  func() { os.Exit(cli.Main(mark.Main)) },
	})
}

// TestScripts runs testdata/script/*.txtar. Each script gets its own
// misbehaving HTTP server on 127.0.0.1, its base URL in $SERVER.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		UpdateScripts:       *update,
		Setup: func(env *testscript.Env) error {
			srv := fetchtest.New()
			env.Setenv("SERVER", srv.URL)
			env.Defer(srv.Close)
			return nil
		},
	})
}
