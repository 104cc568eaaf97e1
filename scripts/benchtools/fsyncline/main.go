// Command fsyncline is a baseline for scripts/bench.sh: it appends each line
// of stdin to FILE with one write and one fsync per line, the naive way to
// make every line durable that ckmark's group commit is compared against.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: fsyncline FILE < lines")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "fsyncline:", err)
		os.Exit(2)
	}
}

// run appends every line of r to the file at path, fsyncing after each one.
func run(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	br := bufio.NewReaderSize(r, 1<<16)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if _, werr := f.Write(line); werr != nil {
				f.Close()
				return werr
			}
			if serr := f.Sync(); serr != nil {
				f.Close()
				return serr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("read stdin: %w", err)
		}
	}
	return f.Close()
}
