// Command ckmark records the lines it reads in a checkpoint, durably.
//
// Usage: see ckmark --help and the README.
package main

import (
	"os"

	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/mark"
)

func main() { os.Exit(cli.Main(mark.Main)) }
