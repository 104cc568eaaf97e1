// Command testserver runs the fetchtest misbehaving HTTP server for shell
// scripts (the demo, the benchmarks). Behaviour is chosen by the URL; see
// the package comment of lib/fetchtest.
//
// Usage:
//
//	go run ./scripts/testserver [-addr 127.0.0.1:0] [-portfile FILE]
//
// It prints the base URL (http://HOST:PORT) on stdout and, with -portfile,
// writes the address HOST:PORT and a newline to FILE, atomically, once the
// server accepts connections. It serves until SIGINT or SIGTERM and then
// exits 0. Statistics are at /_stats, and /_reset clears them.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/ck-tools/ck/lib/fetchtest"
)

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("testserver", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (port 0: a free port)")
	portfile := fs.String("portfile", "", "write the chosen HOST:PORT to this file")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "testserver: no arguments expected; usage: testserver [-addr HOST:PORT] [-portfile FILE]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	srv, err := fetchtest.Listen(*addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testserver: %v\n", err)
		return 1
	}
	defer srv.Close()
	if *portfile != "" {
		if err := writeAtomic(*portfile, srv.Listener.Addr().String()+"\n"); err != nil {
			fmt.Fprintf(os.Stderr, "testserver: %v\n", err)
			return 1
		}
	}
	fmt.Println(srv.URL)
	<-ctx.Done()
	return 0
}

// writeAtomic writes data to a temporary file beside name and renames it,
// so a script polling for name never reads it half written.
func writeAtomic(name, data string) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".testserver-*.tmp")
	if err != nil {
		return fmt.Errorf("write port file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write port file %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write port file %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("write port file: %w", err)
	}
	return nil
}
