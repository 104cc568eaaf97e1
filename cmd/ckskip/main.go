// Command ckskip prints the lines of a list that are still to be done.
//
// Usage: see ckskip --help and the README.
package main

import (
	"os"

	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/skip"
)

func main() { os.Exit(cli.Main(skip.Main)) }
