// Command ckprof runs ckskip, ckmark or ckfetch in-process with a CPU
// profile, to see where scripts/bench.sh's time goes:
//
//	ckprof PROFILE TOOL [ARGS...]
//
// It behaves as TOOL does (stdin, stdout, stderr, exit status) and writes a
// pprof CPU profile to PROFILE; read it with `go tool pprof -top PROFILE`.
// Each SIGUSR1 writes a heap profile of that moment to PROFILE.heap (after
// a garbage collection, so it shows what is live): what the window of a
// long run holds, say.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/fetch"
	"github.com/ck-tools/ck/lib/mark"
	"github.com/ck-tools/ck/lib/skip"
)

func main() {
	os.Exit(run())
}

func run() int {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: ckprof PROFILE ckskip|ckmark|ckfetch [ARGS...]")
		return 2
	}
	tools := map[string]func(context.Context, []string, io.Reader, io.Writer, io.Writer) int{
		"ckskip": skip.Main, "ckmark": mark.Main, "ckfetch": fetch.Main,
	}
	tool, found := tools[os.Args[2]]
	if !found {
		fmt.Fprintf(os.Stderr, "ckprof: unknown tool %q (ckskip, ckmark or ckfetch)\n", os.Args[2])
		return 2
	}
	f, err := os.Create(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "ckprof:", err)
		return 2
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "ckprof:", err)
		return 2
	}
	defer pprof.StopCPUProfile()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			if err := writeHeap(os.Args[1] + ".heap"); err != nil {
				fmt.Fprintln(os.Stderr, "ckprof:", err)
			}
		}
	}()
	ctx, stop := cli.SignalContext(context.Background())
	defer stop()
	return tool(ctx, os.Args[3:], os.Stdin, os.Stdout, os.Stderr)
}

// writeHeap writes a heap profile of what is live now to path.
func writeHeap(path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
