// Package fetch is ckfetch's run logic: it reads URL lines, downloads them
// with limits over all hosts and per host, and echoes each line once its file
// is durable, in input order unless asked otherwise.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/download"
	"github.com/ck-tools/ck/lib/durable"
)

const description = `Downloads the URLs it reads on stdin, one per line (URL, or URL<TAB>PATH with a path
relative to the output directory), and echoes each line on stdout once its file is
complete and durable under its final name. Blank lines and lines starting with # are
ignored. Exit status: 0 all done, 1 some failed, 2 usage error or fatal I/O,
130/143 after SIGINT/SIGTERM, 141 when stdout was closed.`

// CLI is ckfetch's command line.
type CLI struct {
	Jobs           int           `short:"j" default:"8" help:"Downloads at once, over all hosts."`
	Dir            string        `short:"d" default:"." placeholder:"DIR" help:"Output directory, created if missing (default: the current directory)."`
	Sleep          time.Duration `default:"0s" help:"At least this long between the starts of two requests to the same host."`
	PerHost        int           `name:"per-host" default:"4" help:"Downloads at once from one host (host:port)."`
	HostFailures   int           `name:"host-failures" default:"20" placeholder:"N" help:"After N connection failures in a row on one host (refused, unreachable, DNS, connect or TLS handshake) with no response between, its other lines fail at once with 'host unreachable'; lines already running finish their retries. 0: never."`
	Failed         string        `placeholder:"FILE" help:"Append each line that failed for good to FILE, after a '# reason' line; FILE is valid ckfetch input. Without it, the first failure stops the echo of later lines."`
	Unordered      bool          `help:"Echo lines in completion order, not input order (for ckskip --set checkpoints)."`
	Force          bool          `help:"Download even when the final file exists."`
	Retries        int           `default:"5" help:"Retries after the first attempt, on connection errors, timeouts, truncated bodies, 408, 429 and 5xx."`
	Backoff        time.Duration `default:"1s" help:"Wait before the first retry; doubled each time, with jitter."`
	MaxBackoff     time.Duration `name:"max-backoff" default:"2m" help:"Longest wait between two tries, Retry-After included."`
	ConnectTimeout time.Duration `name:"connect-timeout" default:"30s" help:"Give up connecting after this long (retryable)."`
	StallTimeout   time.Duration `name:"stall-timeout" default:"60s" help:"Give up an attempt when no byte arrived for this long (retryable); 0: never."`
	Report         string        `placeholder:"FILE" help:"Append one JSON object per URL to FILE: url, final_url, path, status, http_status, bytes, attempts, duration_ms, error."`
	Quiet          bool          `short:"q" help:"No progress and no summary (errors are still printed)."`
	Window         int           `default:"10000" help:"Most lines between the oldest unsettled one and the newest started (bounds memory)."`
}

// Validate checks the rules between flags.
func (c *CLI) Validate() error {
	switch {
	case c.Jobs < 1:
		return errors.New("--jobs must be at least 1")
	case c.PerHost < 1:
		return errors.New("--per-host must be at least 1")
	case c.Retries < 0:
		return errors.New("--retries must not be negative")
	case c.HostFailures < 0:
		return errors.New("--host-failures must not be negative (0 turns host health off)")
	case c.Window < 1:
		return errors.New("--window must be at least 1")
	case c.Sleep < 0 || c.Backoff < 0 || c.MaxBackoff < 0 || c.ConnectTimeout < 0 || c.StallTimeout < 0:
		return errors.New("durations must not be negative")
	}
	return nil
}

// Main runs ckfetch with args and returns its exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var c CLI
	if code, ok := cli.Parse("ckfetch", description, &c, args, stdout, stderr); !ok {
		return code
	}
	// A closed stdout is noticed as EPIPE and ends the run with its summary
	// and status (141, or the signal's during a shutdown); left to the
	// runtime, SIGPIPE would kill the process with neither.
	signal.Ignore(syscall.SIGPIPE)
	log := cli.Logger{Name: "ckfetch", W: stderr}
	r, err := newRun(&c, stdin, stdout, stderr)
	if err != nil {
		log.Printf("%v", err)
		return cli.ExitUsage
	}
	defer r.close()
	return r.run(ctx, stdin)
}

// checkDir makes sure files can be created in dir, before any work starts.
// A dir it creates is fsynced into its parent, as every directory of a file
// echoed must be.
func checkDir(dir string) error {
	if err := durable.MkdirAll(dir, durable.SyncDir); err != nil {
		return fmt.Errorf("output directory %s cannot be created: %w (choose another with -d)", dir, errors.Unwrap(err))
	}
	f, err := os.CreateTemp(dir, ".ckfetch-probe-*.part")
	if err != nil {
		return fmt.Errorf("output directory %s is not writable: %w (fix its permissions or choose another with -d)", dir, errors.Unwrap(err))
	}
	f.Close()
	return os.Remove(f.Name())
}

// newFetcher returns the run's Fetcher, paced by s, and ties s to the
// client's connection pool: s releases hosts out of play, the pool tells s
// of every connection's fate (host health).
func newFetcher(c *CLI, s *sched, prog func(int64)) *download.Fetcher {
	client := download.NewClient(c.ConnectTimeout, c.StallTimeout, c.Jobs, c.PerHost)
	pool := client.Transport.(*download.Pool)
	s.pool = pool
	s.setHealth(c.HostFailures)
	pool.OnConn = s.connResult
	return &download.Fetcher{
		Client:       client,
		Retries:      c.Retries,
		Backoff:      c.Backoff,
		MaxBackoff:   c.MaxBackoff,
		StallTimeout: c.StallTimeout,
		Force:        c.Force,
		Pacer:        s,
		Dirs:         &durable.DirSyncer{},
		Root:         c.Dir,
		Progress:     prog,
	}
}

// shortLine shortens a line for a message.
func shortLine(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
