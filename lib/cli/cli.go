// Package cli holds what the three ck commands share on the command line:
// parsing with kong (Go-style single-dash long flags, usage errors exit 2),
// tool-prefixed messages on stderr, signal handling and the exit statuses.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/ck-tools/ck/lib/redact"
)

// Exit statuses, the same for all three tools.
const (
	ExitOK          = 0   // everything done
	ExitFailure     = 1   // some item failed, or the checkpoint does not fit the input
	ExitUsage       = 2   // usage error or fatal I/O error
	ExitHangup      = 129 // stopped by SIGHUP (the terminal closed)
	ExitInterrupted = 130 // stopped by SIGINT
	ExitPipe        = 141 // stdout closed, as for SIGPIPE
	ExitTerminated  = 143 // stopped by SIGTERM
)

// Signals are the signals that stop a tool the orderly way: SIGHUP (the
// terminal closed), SIGINT (Ctrl-C) and SIGTERM, each with its own status.
var Signals = []os.Signal{syscall.SIGHUP, os.Interrupt, syscall.SIGTERM}

// SignalExit returns the exit status after sig, 128 plus its number as a
// shell reports it: 129 after SIGHUP, 130 after SIGINT, 143 after SIGTERM.
// Any other signal gives 130.
func SignalExit(sig os.Signal) int {
	switch sig {
	case syscall.SIGHUP:
		return ExitHangup
	case syscall.SIGTERM:
		return ExitTerminated
	}
	return ExitInterrupted
}

// RunFunc is the entry point of a tool: it returns the exit status and never
// calls os.Exit, so tests can run it in-process.
type RunFunc func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

// Signal is the cancellation cause of a context cancelled by a signal.
type Signal struct{ Sig os.Signal }

func (s Signal) Error() string { return "interrupted by " + s.Sig.String() }

// SignalContext returns a context cancelled, with a Signal cause, by the
// first of Signals. After that first signal the default handling is
// restored, so a second one ends the process at once, unless the tool has
// asked for the signals itself (signal.Notify) to handle the second one.
func SignalContext(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, Signals...)
	go func() {
		select {
		case s := <-ch:
			signal.Stop(ch)
			cancel(Signal{s})
		case <-ctx.Done():
			signal.Stop(ch)
		}
	}()
	return ctx, func() { cancel(nil) }
}

// SignalStatus returns 129, 130 or 143 if ctx was cancelled by SIGHUP,
// SIGINT or SIGTERM (see SignalContext and SignalExit), and 0 otherwise.
func SignalStatus(ctx context.Context) int {
	var s Signal
	if errors.As(context.Cause(ctx), &s) {
		return SignalExit(s.Sig)
	}
	return 0
}

// Main runs a tool as a process: it builds the signal-aware context and
// returns the status for os.Exit.
func Main(run RunFunc) int {
	ctx, stop := SignalContext(context.Background())
	defer stop()
	return run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}

// Logger writes messages on stderr, each line prefixed with the tool's name.
type Logger struct {
	Name string
	W    io.Writer
}

// Printf writes one message line. The user information of every URL in it
// is masked (redact.Mask), so no message shows a password written in a URL.
func (l Logger) Printf(format string, args ...any) {
	msg := redact.Mask(strings.TrimRight(fmt.Sprintf(format, args...), "\n"))
	fmt.Fprintf(l.W, "%s: %s\n", l.Name, msg)
}

type exitPanic struct{ code int }

// Parse parses args into the CLI struct grammar with kong. Single-dash words
// that name a long flag (-sleep 1s, -sleep=1s) are read as their double-dash
// form first. Every tool gets -V, --version (NAME and Version() on stdout).
// It returns ok=false and the status to exit with when the tool should not
// run: 0 after --help or --version, 2 after a usage error (kong's own
// default, 80, is not ours), with the error and a hint on stderr.
func Parse(name, description string, grammar any, args []string, stdout, stderr io.Writer, opts ...kong.Option) (code int, ok bool) {
	opts = append([]kong.Option{
		kong.Name(name),
		kong.Description(description),
		kong.Writers(stdout, stderr),
		kong.Exit(func(c int) { panic(exitPanic{c}) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Embed(&versionFlag{}),
		kong.Vars{"version": name + " " + Version()},
	}, opts...)
	parser, err := kong.New(grammar, opts...)
	if err != nil {
		panic(err) // a bug in the grammar, not the user's fault
	}
	defer func() {
		if r := recover(); r != nil {
			e, isExit := r.(exitPanic)
			if !isExit {
				panic(r)
			}
			code, ok = e.code, false
			if code != 0 {
				code = ExitUsage
			}
		}
	}()
	if _, err := parser.Parse(RewriteLongFlags(args, longFlags(parser))); err != nil {
		Logger{name, stderr}.Printf("%v (see %s --help)", err, name)
		return ExitUsage, false
	}
	return 0, true
}

func longFlags(k *kong.Kong) map[string]bool {
	names := map[string]bool{}
	for _, group := range k.Model.AllFlags(true) {
		for _, f := range group {
			names[f.Name] = true
			for _, a := range f.Aliases {
				names[a] = true
			}
			if f.IsBool() {
				names["no-"+f.Name] = f.Negated
			}
		}
	}
	return names
}

// RewriteLongFlags turns each single-dash word that names one of the long
// flags (-sleep, -sleep=1s) into its double-dash form, so Go-style flags work
// with kong's GNU-style parser. Short flags (-j 8, -c FILE) are left alone, as
// is everything after "--".
func RewriteLongFlags(args []string, long map[string]bool) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if len(name) > 1 && long[name] {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}
