// Package mark is ckmark's run logic: it records the lines read on stdin in
// a checkpoint file durably, with group commit, and optionally copies each
// line to stdout once it is durable.
//
// Design. A reader goroutine reads stdin in blocks and adds the whole lines
// of each block to a batch (Batch.AddLines copies runs of lines that need
// no change in one go: per-line work would cost more CPU than the write);
// the start of a line that a block cuts off waits in the read buffer for
// the next block. The committer (Main's goroutine) takes the batch, leaving
// an empty one in its place, and appends it with one Write and one fsync
// (checkpoint.Appender). The reader lends its batch to the committer only
// while it reads stdin (the batch's lines are then all parsed), so lines
// are copied once, from the read buffer into the batch, and a line never
// waits in the reader while it blocks. Lines that arrive while a batch is
// being fsynced go into the next one, so fast input makes big batches and
// few fsyncs by itself. On top of that, --sync-every D is a deliberate
// window: a batch is committed once its oldest line has waited D, or at once
// when it reaches commitAt bytes, when input ends, or after a signal. The
// window turns a trickle of lines (ckfetch echoing a few hundred a second)
// into a few fsyncs a second instead of one per line, at the price of at
// most D of work redone after a crash. With D = 0 every batch is committed
// as soon as the previous fsync ends. A fsync that is running is never cut
// short, so a line waits at most D, or one fsync if the disk is slower.
//
// Signals. Ctrl-C sends SIGINT to every process of the pipeline at once,
// while ckfetch may still be fsyncing a finished file whose line it has yet
// to echo. So on the first SIGHUP, SIGINT or SIGTERM ckmark does not stop
// reading: it drains, committing every batch at once (no window), until its
// stdin ends (its writer exited) or --grace has passed. A second signal, the
// end of the grace period, or a closed stdout with -t stop the reader at its
// next Read, and everything it parsed is committed. A reader blocked in a
// Read of an idle pipe is given readGrace, then abandoned: whatever that
// Read returns later is not recorded (it was never parsed into lines). The
// exit status is the first signal's.
package mark

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ck-tools/ck/lib/checkpoint"
	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/lines"
)

const name = "ckmark"

const description = `Append each non-blank line of stdin to CHECKPOINT, durably.

Lines are written whole, as read minus their ending, followed by "\n", and
fsynced in groups (group commit): a line waits at most --sync-every before
its group is written and fsynced. Everything read is durable before ckmark
exits, at end of input, after a signal, and when stdout is closed with -t.
An unterminated last input line is not recorded. Concurrent ckmark
processes may append to one checkpoint; a torn last line left by a crash is
saved to CHECKPOINT.torn, then cut off with a warning.

On the first SIGHUP, SIGINT or SIGTERM ckmark goes on reading and recording
until its input ends (the command writing to it exited), for at most
--grace; a second signal stops it at once, everything read so far durable.

Exit status: 0 done, 2 usage or I/O error, 129/130/143 after
SIGHUP/SIGINT/SIGTERM, 141 when stdout was closed with -t.`

// CLI is ckmark's command line.
type CLI struct {
	Tee        bool          `short:"t" help:"Copy each line to stdout once it is durable, so ckmark can sit in the middle of a pipeline."`
	SyncEvery  time.Duration `default:"100ms" placeholder:"D" help:"Longest a line waits before its group of lines is written and fsynced (0: commit as soon as the previous fsync ends). Default: ${default}."`
	Grace      time.Duration `default:"10s" placeholder:"D" help:"After a first signal, how long to go on reading and recording until stdin ends (its writer finishing its last lines) before stopping; a second signal stops at once. Default: ${default}."`
	Checkpoint string        `arg:"" placeholder:"CHECKPOINT" help:"File to append the lines to; created if missing."`
}

// Validate rejects a negative --sync-every or --grace.
func (c *CLI) Validate() error {
	if c.SyncEvery < 0 {
		return fmt.Errorf("--sync-every must not be negative, got %v", c.SyncEvery)
	}
	if c.Grace < 0 {
		return fmt.Errorf("--grace must not be negative, got %v", c.Grace)
	}
	return nil
}

const (
	// commitAt is the batch size in bytes that is committed without
	// waiting for the --sync-every window: a fast stream needs no waiting
	// to make big batches.
	commitAt = 1 << 20
	// maxPending is the batch size in bytes at which the reader stops
	// reading until the committer takes the batch, which bounds memory
	// when the disk is slower than stdin (plus one line of any length).
	maxPending = 4 << 20
	// tailShown is how much of an unrecorded unterminated line a warning
	// quotes.
	tailShown = 80
	// readGrace is how long, after a signal, the committer waits for a
	// reader that is in a Read of stdin. A Read that returns meanwhile
	// (its data may already be out of the pipe) is parsed and committed;
	// one still blocked after that is abandoned, with nothing in it.
	readGrace = 50 * time.Millisecond
	// readSize is the size of the reads of stdin: small enough that a
	// block is still in the CPU cache when its lines are copied into the
	// batch. A longer line grows the read buffer to hold it whole.
	readSize = 256 << 10
)

// errStopped ends the reader once the committer stops.
var errStopped = errors.New("stopped")

// Main runs ckmark with args and returns its exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var c CLI
	if code, ok := cli.Parse(name, description, &c, args, stdout, stderr); !ok {
		return code
	}
	log := cli.Logger{Name: name, W: stderr}
	app, err := checkpoint.OpenAppender(c.Checkpoint, checkpoint.AppendOptions{
		Warn: func(msg string) { log.Printf("warning: %s", msg) },
	})
	if err != nil {
		log.Printf("%v%s", err, openHint(err, c.Checkpoint))
		return cli.ExitUsage
	}
	r := newRun(app, c.SyncEvery)
	r.grace = c.Grace
	// ckmark handles the second signal itself (SignalContext would restore
	// the default handling after the first, and the second would kill it
	// with lines read but not durable).
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, cli.Signals...)
	defer signal.Stop(sigs)
	if c.Tee {
		r.tee = stdout
		// A write to a closed stdout must return EPIPE rather than kill
		// the process, so what was read is still committed (exit 141).
		pipe := make(chan os.Signal, 1)
		signal.Notify(pipe, syscall.SIGPIPE)
		defer signal.Stop(pipe)
	}
	growPipe(stdin)
	go r.read(stdin)
	status := r.commit(ctx, sigs, log)
	if err := app.Close(); err != nil && status == cli.ExitOK {
		log.Printf("%v", err)
		status = cli.ExitUsage
	}
	return status
}

// openHint says what to do about a checkpoint that cannot be opened.
func openHint(err error, path string) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		dir := filepath.Dir(path)
		return fmt.Sprintf(" (does directory %s exist? create it with mkdir -p %s, or fix the path)", dir, dir)
	case errors.Is(err, fs.ErrPermission):
		return " (make the file and its directory writable, or choose another path)"
	case errors.Is(err, syscall.EROFS):
		return " (the file system is read-only: choose another path)"
	case errors.Is(err, syscall.EISDIR):
		return " (CHECKPOINT must be a file, not a directory)"
	}
	return ""
}

// run is the state shared by the reader goroutine and the committer.
type run struct {
	app    *checkpoint.Appender
	window time.Duration
	grace  time.Duration // how long to drain after the first signal
	tee    io.Writer     // nil without -t
	wake   chan struct{}

	mu sync.Mutex
	// fill is the batch the reader adds lines to. The reader owns it while
	// it parses; while lent is true (the reader is in, or about to enter, a
	// Read of stdin, or waits for room) the committer may take it.
	fill      *checkpoint.Batch
	fillSince time.Time  // when fill was first lent with lines in it
	lent      bool       //
	room      *sync.Cond // signalled when fill was taken, or on stop
	done      bool       // the reader has returned: fill is the committer's
	eof       bool       // ... at the end of input
	readErr   error      // ... with this error reading stdin
	tail      []byte     // start of an unterminated last line, not recorded
	tailLen   int        // its full length
	draining  bool       // a first signal came: commit at once, read on
	drainEnd  time.Time  // ... until then
	cancelled bool       // read no more: second signal, grace over, or stdout closed
	giveUp    time.Time  // after cancel, when to stop waiting for a Read
	stop      bool       // the committer is finished: touch nothing more
}

func newRun(app *checkpoint.Appender, window time.Duration) *run {
	r := &run{
		app:    app,
		window: window,
		wake:   make(chan struct{}, 1),
		fill:   newBatch(),
	}
	r.room = sync.NewCond(&r.mu)
	return r
}

// newBatch returns a batch with room for a typical batch of a fast stream:
// what commitAt lets through, plus one read buffer of lines. Beyond that
// it grows as lines come.
func newBatch() *checkpoint.Batch {
	b := new(checkpoint.Batch)
	b.Grow(commitAt + readSize)
	return b
}

// notify wakes the committer; it never blocks.
func (r *run) notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// read reads stdin in blocks (lines.Blocks) and adds the whole lines of
// each to r.fill, lending it to the committer during each Read of stdin
// (lending). The start of a line that a block cuts off waits in the read
// buffer for the next block.
func (r *run) read(stdin io.Reader) {
	blocks := lines.NewBlocks(lending{r, stdin}, readSize, readSize)
	for {
		b, err := blocks.Next()
		if err != nil {
			var tail []byte // after a failed read, the start of a line is dropped
			if err == io.EOF {
				tail = blocks.Tail()
			}
			r.finish(err, tail)
			return
		}
		r.fill.AddLines(b)
	}
}

// lending is stdin as the reader goroutine reads it: r.fill is lent to the
// committer during each Read. A Read after which the committer has stopped
// returns errStopped, and its bytes are dropped: they were never parsed.
type lending struct {
	r     *run
	stdin io.Reader
}

func (l lending) Read(p []byte) (int, error) {
	if err := l.r.lend(); err != nil {
		return 0, err
	}
	n, err := l.stdin.Read(p)
	if !l.r.reclaim() {
		return 0, errStopped
	}
	return n, err
}

// lend lends r.fill to the committer before a Read of stdin. If the batch is
// full it waits until the committer took it. It returns errStopped when the
// reader must stop instead: after a signal, everything read so far is
// committed and nothing more is read.
func (r *run) lend() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stop || r.cancelled {
		return errStopped
	}
	r.lent = true
	if r.fill.Lines() > 0 && r.fillSince.IsZero() {
		r.fillSince = time.Now()
	}
	r.notify()
	for r.fill.Len() >= maxPending && !r.cancelled && !r.stop {
		r.room.Wait()
	}
	if r.stop || r.cancelled {
		return errStopped
	}
	return nil
}

// reclaim takes r.fill back after a Read. If the committer finished
// meanwhile, the reader stops.
func (r *run) reclaim() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lent = false
	r.notify()
	return !r.stop
}

// finish records how reading ended: err is io.EOF at the end of input, and
// tail an unterminated last line. From then on fill is the committer's.
func (r *run) finish(err error, tail []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stop {
		return
	}
	r.done = true
	if r.fill.Lines() > 0 && r.fillSince.IsZero() {
		r.fillSince = time.Now()
	}
	switch {
	case err == io.EOF:
		r.eof = true
	case !errors.Is(err, errStopped):
		r.readErr = err
	}
	if len(lines.Key(tail)) > 0 {
		r.tail = append([]byte(nil), tail[:min(len(tail), tailShown)]...)
		r.tailLen = len(tail)
	}
	r.notify()
}

// commit is the committer loop. It returns the exit status once everything
// read is durable (or a checkpoint write failed). The first signal (on sigs,
// or ctx cancelled) starts the drain, the second cancels.
func (r *run) commit(ctx context.Context, sigs <-chan os.Signal, log cli.Logger) int {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	done := ctx.Done()
	spare := newBatch()
	teeStatus := cli.ExitOK
	var first os.Signal // the first signal received on sigs
	signals := 0
	for {
		r.mu.Lock()
		drainLeft := time.Duration(0)
		if r.draining && !r.cancelled {
			if drainLeft = time.Until(r.drainEnd); drainLeft <= 0 {
				r.stopReading()
			}
		}
		// Once cancelled the reader stops at its next Read. If it is
		// blocked in one it may never come back, so do not wait for it
		// longer than readGrace: every line it parsed is in the batch it
		// lent.
		wait, grace := time.Duration(0), time.Duration(0)
		if r.cancelled && r.lent && !r.done {
			grace = time.Until(r.giveUp)
		}
		final := r.done || (r.cancelled && r.lent && grace <= 0)
		var batch *checkpoint.Batch
		n := 0
		if r.lent || r.done { // fill is the reader's while it parses
			n = r.fill.Len()
		}
		if n > 0 {
			if !final && !r.cancelled && !r.draining && n < commitAt && r.window > 0 {
				wait = r.window - time.Since(r.fillSince)
			}
			if wait <= 0 {
				batch, r.fill, r.fillSince = r.fill, spare, time.Time{}
				r.room.Broadcast()
			}
		}
		if final {
			r.stop = true
			r.room.Broadcast()
		}
		r.mu.Unlock()

		if batch != nil {
			if err := r.app.Append(batch); err != nil {
				r.halt()
				log.Printf("%v", err)
				return cli.ExitUsage
			}
			if r.tee != nil && teeStatus == cli.ExitOK {
				if _, err := r.tee.Write(batch.Bytes()); err != nil {
					teeStatus = cli.ExitUsage
					if errors.Is(err, syscall.EPIPE) {
						teeStatus = cli.ExitPipe
					} else {
						log.Printf("write stdout: %v", err)
					}
					r.cancel() // commit what was read, read no more
				}
			}
			batch.Reset()
			spare = batch
			continue
		}
		if final {
			return r.status(ctx, first, log, teeStatus)
		}

		for _, d := range []time.Duration{grace, drainLeft} {
			if d > 0 && (wait <= 0 || d < wait) {
				wait = d
			}
		}
		var tick <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tick = timer.C
		}
		select {
		case <-r.wake:
		case <-tick:
		case <-done:
			done = nil
			r.drain()
		case s := <-sigs:
			if signals++; signals == 1 {
				first = s
				r.drain()
			} else {
				r.cancel()
			}
		}
		timer.Stop()
	}
}

// drain starts the grace period after a first signal: the reader goes on
// until stdin ends, and every batch is committed at once.
func (r *run) drain() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.draining {
		r.draining = true
		r.drainEnd = time.Now().Add(r.grace)
	}
}

// cancel makes the reader stop at its next Read.
func (r *run) cancel() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopReading()
}

// stopReading is cancel with r.mu held.
func (r *run) stopReading() {
	if !r.cancelled {
		r.cancelled = true
		r.giveUp = time.Now().Add(readGrace)
	}
	r.room.Broadcast()
}

// halt stops the reader after a failed commit.
func (r *run) halt() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stop = true
	r.room.Broadcast()
}

// status reports how the run ended, once everything read is committed.
// After a signal it is the signal's status, even when stdin ended or
// stdout closed during the drain.
func (r *run) status(ctx context.Context, first os.Signal, log cli.Logger, teeStatus int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tail != nil {
		more := ""
		if r.tailLen > len(r.tail) {
			more = fmt.Sprintf("... (%d bytes)", r.tailLen)
		}
		log.Printf("stdin: last line has no newline; not recorded: %q%s", r.tail, more)
	}
	switch {
	case r.readErr != nil:
		log.Printf("read stdin: %v", r.readErr)
		return cli.ExitUsage
	case cli.SignalStatus(ctx) != 0:
		return cli.SignalStatus(ctx)
	case first != nil:
		return cli.SignalExit(first)
	case teeStatus != cli.ExitOK:
		return teeStatus
	case ctx.Err() != nil:
		return cli.ExitInterrupted
	case r.eof:
		return cli.ExitOK
	}
	return cli.ExitInterrupted
}

// growPipe asks for a 1 MiB pipe buffer when stdin is a pipe. With the
// default 64 KiB, a fast writer wakes ckmark's reader (and its hand-off of
// the batch to the committer) sixteen times as often. Failure is harmless.
func growPipe(stdin io.Reader) {
	f, ok := stdin.(*os.File)
	if !ok {
		return
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		return
	}
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20) })
	}
}
