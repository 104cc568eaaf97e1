// Package skip is ckskip's run logic: it reads the checkpoint, then streams
// the input lists and prints the lines still to be done.
//
// After mode (the default) resumes after the checkpoint's last line, found by
// its key and its count (the k-th occurrence of a key written k times). Set
// mode (--set) prints every line whose key is not in the checkpoint. Both
// stream the input in large blocks: lines that need no change are written
// out in runs, unchanged, and only blank, indented or "\r\n" lines are
// looked at one by one.
package skip

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/ck-tools/ck/lib/checkpoint"
	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/keyset"
	"github.com/ck-tools/ck/lib/shard"
)

const name = "ckskip"

const description = `Print the lines of the input lists that are still to be done.

Reads the FILEs in order (none, or -, for standard input). By default it
resumes after the checkpoint's last line; --set skips every line whose key is
in the checkpoint, for checkpoints written out of order. A line's key is the
line without its ending and surrounding spaces, tabs and carriage returns;
blank lines are never printed. Exit status: 0 done, 1 the checkpoint does not fit the input
(nothing printed), 2 usage or I/O error.`

// CLI is ckskip's command line.
type CLI struct {
	Checkpoint string   `short:"c" placeholder:"FILE" help:"Checkpoint written by ckmark; a missing or empty one means nothing is done yet."`
	Set        bool     `help:"Skip every line whose key is anywhere in the checkpoint, instead of resuming after its last line."`
	Shard      string   `placeholder:"K/N" help:"Keep only the lines whose key hashes to shard K of N (FNV-1a 64 of the key, mod N; 0 <= K < N)."`
	Files      []string `arg:"" optional:"" name:"FILE" help:"Lists to read, in order; - or none for standard input."`

	shard *shard.Spec // parsed from Shard by Validate
}

// Validate checks the flags that kong cannot: the shard spec.
func (c *CLI) Validate() error {
	if c.Shard == "" {
		return nil
	}
	s, err := shard.Parse(c.Shard)
	if err != nil {
		return fmt.Errorf("--shard %s: %w", c.Shard, err)
	}
	c.shard = &s
	return nil
}

// Main runs ckskip with args and returns its exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var c CLI
	if code, ok := cli.Parse(name, description, &c, args, stdout, stderr); !ok {
		return code
	}
	log := cli.Logger{Name: name, W: stderr}
	ew := &errWriter{w: stdout}
	w := bufio.NewWriterSize(ew, 256<<10)
	code := run(ctx, &c, stdin, w, ew, log)
	if err := w.Flush(); err != nil && code == cli.ExitOK {
		code = writeFailed(err, log)
	}
	return code
}

// run does the work; Main flushes w on every path after it returns.
func run(ctx context.Context, c *CLI, stdin io.Reader, w *bufio.Writer, ew *errWriter, log cli.Logger) int {
	if len(c.Files) == 0 {
		c.Files = []string{"-"}
	}
	// Catch a mistyped name before anything is printed.
	for _, f := range c.Files {
		if err := checkInput(f); err != nil {
			log.Printf("%v", err)
			return cli.ExitUsage
		}
	}
	r := &runner{ctx: ctx, w: w, ew: ew, shard: c.shard, mode: emitting}
	defer func() {
		if r.set != nil {
			r.set.Release()
		}
	}()
	if c.Checkpoint != "" {
		if err := r.readCheckpoint(c.Checkpoint, c.Set, log); err != nil {
			log.Printf("%v", err)
			return cli.ExitUsage
		}
	}
	for _, f := range c.Files {
		if err := r.input(f, stdin); err != nil {
			return r.fail(err, log)
		}
	}
	if r.mode == seeking {
		log.Printf("%s", r.notFit(c))
		return cli.ExitFailure
	}
	return cli.ExitOK
}

// readCheckpoint reads all it needs from the checkpoint before anything is
// printed, because ckmark may be appending to it while ckskip runs.
func (r *runner) readCheckpoint(path string, set bool, log cli.Logger) error {
	s, err := checkpoint.Open(path)
	if err != nil {
		return err
	}
	defer s.Close()
	if s.Torn() {
		log.Printf("warning: checkpoint %s: its last line has no newline (torn by a crash); ignoring that line", path)
	}
	if set {
		n, err := s.Lines()
		if err != nil {
			return err
		}
		r.set = keyset.New(int(n))
		r.mode = setting
		return s.Keys(func(keys [][]byte) error {
			r.set.AddEach(keys)
			return nil
		})
	}
	last, err := s.Last()
	if err != nil || last.Key == nil {
		return err
	}
	r.last, r.mode = last, seeking
	if r.shard != nil && !r.shard.Keep(last.Key) {
		r.otherShard = true
	}
	return nil
}

func (r *runner) notFit(c *CLI) string {
	key := r.last.Key
	const show = 200
	shown := fmt.Sprintf("%q", key)
	if len(key) > show {
		shown = fmt.Sprintf("%q... (%d bytes)", key[:show], len(key))
	}
	where := "the input"
	if c.shard != nil {
		where = "shard " + c.shard.String() + " of the input"
	}
	var what string
	switch {
	case r.otherShard:
		what = fmt.Sprintf("last line %s hashes to another shard than %s", shown, c.shard)
	case r.seen == 0:
		what = fmt.Sprintf("last line %s is not in %s", shown, where)
	default:
		what = fmt.Sprintf("last line %s occurs %d times in the checkpoint but %d times in %s",
			shown, r.last.Count, r.seen, where)
	}
	return fmt.Sprintf("%s:%d: %s; printed nothing: is %s the checkpoint of this list? "+
		"If it was written out of order (several workers, retries, ckfetch --unordered), use --set",
		c.Checkpoint, r.last.Line, what, c.Checkpoint)
}

// checkInput fails early on an input that cannot be read.
func checkInput(path string) error {
	if path == "-" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if info.IsDir() {
		return fmt.Errorf("read %s: is a directory", path)
	}
	return nil
}

// input streams one input list, "-" for stdin.
func (r *runner) input(path string, stdin io.Reader) error {
	if path == "-" {
		err := r.file(stdin)
		if err != nil && !isWrite(err) && !isCanceled(err) {
			return fmt.Errorf("read standard input: %w", err)
		}
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return r.file(f) // errors of *os.File name the file already
}

// fail turns an error of the streaming phase into the exit status.
func (r *runner) fail(err error, log cli.Logger) int {
	var we writeError
	switch {
	case errors.As(err, &we):
		return writeFailed(we.err, log)
	case isCanceled(err):
		if code := cli.SignalStatus(r.ctx); code != 0 {
			return code
		}
		return cli.ExitInterrupted
	}
	log.Printf("%v", err)
	return cli.ExitUsage
}

// writeFailed reports an error writing stdout. A closed pipe is the next
// command's choice, not an error worth a message: exit 141 as for SIGPIPE.
func writeFailed(err error, log cli.Logger) int {
	if errors.Is(err, syscall.EPIPE) {
		return cli.ExitPipe
	}
	log.Printf("write standard output: %v", err)
	return cli.ExitUsage
}

// errWriter remembers the first error of the writer under the bufio.Writer,
// so the hot loops can ignore the results of single writes and check once
// per block.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

// writeError marks an error of stdout, as opposed to one of the input.
type writeError struct{ err error }

func (e writeError) Error() string { return "write standard output: " + e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

func isWrite(err error) bool {
	var we writeError
	return errors.As(err, &we)
}

func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
