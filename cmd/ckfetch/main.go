// Command ckfetch downloads the URLs it reads and echoes the ones that succeeded.
//
// Usage: see ckfetch --help and the README.
package main

import (
	"os"

	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/fetch"
)

func main() { os.Exit(cli.Main(fetch.Main)) }
