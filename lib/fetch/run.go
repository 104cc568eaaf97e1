package fetch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/download"
	"github.com/ck-tools/ck/lib/lines"
	"github.com/ck-tools/ck/lib/outname"
	"github.com/ck-tools/ck/lib/redact"
)

// item is one URL line on its way through the run.
type item struct {
	seq  int64
	line string // as read, minus its ending: what is echoed
	url  string
	host string // host:port, the key of the per-host limits
	path string // the final file
	sum  download.Checksum
	num  int64 // its line number in the input, from 1
	err  error // the line cannot be downloaded
}

type outcome struct {
	it   *item
	res  download.Result
	halt bool // its result stopped the run: nothing from it on is echoed
}

var errPipe = errors.New("stdout closed")

// run is the state of one ckfetch run.
type run struct {
	c       *CLI
	log     cli.Logger
	stdout  io.Writer
	failed  *os.File // --failed, or nil
	report  *os.File // --report, or nil
	sched   *sched
	fetcher *download.Fetcher
	results chan *outcome // room for the whole window: 8 bytes a line, not an outcome's 160
	prog    *progress

	readErr error // set by read before it closes its channel

	// counters, read by the progress display
	done, exists, failures atomic.Int64
	bytes                  atomic.Int64
}

func newRun(c *CLI, stdin io.Reader, stdout, stderr io.Writer) (*run, error) {
	if c.Failed != "" && sameFile(stdin, c.Failed) {
		return nil, fmt.Errorf("--failed %s is also the input: ckfetch would read its own failures back; retry from a copy (cp %s retry.txt; ckfetch --failed %s < retry.txt)", c.Failed, c.Failed, c.Failed)
	}
	if err := checkDir(c.Dir); err != nil {
		return nil, err
	}
	r := &run{
		c:       c,
		log:     cli.Logger{Name: "ckfetch", W: stderr},
		stdout:  stdout,
		sched:   newSched(c.Jobs, c.PerHost, c.Sleep),
		results: make(chan *outcome, c.Window),
	}
	var err error
	if c.Failed != "" {
		if r.failed, err = openAppend("--failed", c.Failed); err != nil {
			return nil, err
		}
		warning, err := repairTail(r.failed, c.Failed)
		if err != nil {
			r.close()
			return nil, err
		}
		if warning != "" {
			r.log.Printf("%s", warning)
		}
	}
	if c.Report != "" {
		if r.report, err = openAppend("--report", c.Report); err != nil {
			r.close()
			return nil, err
		}
	}
	r.prog = newProgress(r, stderr, c.Quiet)
	r.fetcher = newFetcher(c, r.sched, func(n int64) { r.bytes.Add(n) })
	r.fetcher.BeforeAttempt = r.sched.acquire
	r.fetcher.SHA256 = c.Report != "" // the report's sha256, computed while streaming
	return r, nil
}

func (r *run) close() {
	if r.fetcher != nil {
		r.fetcher.Dirs.Close()
	}
	if r.failed != nil {
		r.failed.Close()
	}
	if r.report != nil {
		r.report.Close()
	}
}

// run reads stdin to its end (or until stopped) and returns the exit status.
func (r *run) run(parent context.Context, stdin io.Reader) int {
	start := time.Now()
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	go watchStdout(ctx, r.stdout, cancel)
	r.prog.start()

	workers := newWorkers(r.c.Jobs, func(t *ticket) { r.work(ctx, t) })
	defer workers.close()
	r.sched.launch, r.sched.offer = workers.launch, workers.offer
	stopSched := context.AfterFunc(ctx, func() {
		for _, it := range r.sched.stop() {
			r.results <- &outcome{it: it, res: download.Result{URL: it.url, Path: it.path, Status: download.Canceled}}
		}
	})
	defer stopSched()
	items := make(chan *item)
	go r.read(ctx, stdin, items)
	window := make(chan struct{}, r.c.Window)
	dispatched := make(chan int64, 1)
	go r.dispatch(ctx, items, window, dispatched)

	var (
		echoes   = newEchoer(r.c.Unordered, r.failed != nil)
		stdout   = &echoOut{w: r.stdout}
		seen     int64
		total    int64 = -1
		fatalErr error // local state failed: the run stops
		out      []*item
	)
	fail := func(err error) {
		if fatalErr == nil {
			fatalErr = err
			cancel(err)
		}
	}
	for total < 0 || seen < total {
		var o *outcome
		select {
		case total = <-dispatched:
			continue
		case o = <-r.results:
		}
		seen++
		// A line whose result stopped the run is like an interrupted one:
		// earlier lines that complete are still echoed, it and later ones not.
		if err := r.record(o); err != nil {
			o.halt = true
			fail(err)
		}
		var settled int
		out, settled = echoes.add(o, out[:0])
		switch err := stdout.write(out); {
		case err == errPipe:
			cancel(errPipe)
		case err != nil:
			fail(err)
		}
		for range settled {
			<-window
		}
	}
	r.prog.stop()
	return r.finish(parent, ctx, start, echoes.frozen, echoes.notEchoed, fatalErr, stdout.gone)
}

// finish prints the summary and the last words, and chooses the exit status.
func (r *run) finish(parent, ctx context.Context, start time.Time, frozen bool, notEchoed int64, fatalErr error, pipeClosed bool) int {
	if !r.c.Quiet {
		r.log.Printf("%s", r.summary(ctx, time.Since(start)))
	}
	if frozen && notEchoed > 0 {
		r.log.Printf("%d later lines were downloaded but not echoed, because an earlier line failed and there is no --failed file; the next run finds their files without a request", notEchoed)
	}
	// A signal comes first: Ctrl-C reaches the whole pipeline at once, so
	// the next command may well have gone away during the shutdown.
	switch {
	case cli.SignalStatus(parent) != 0:
		r.log.Printf("interrupted: partial downloads are kept as .part files; run the same command again to resume")
		return cli.SignalStatus(parent)
	case pipeClosed || errors.Is(context.Cause(ctx), errPipe):
		return cli.ExitPipe
	case fatalErr != nil:
		r.log.Printf("stopped: %v", fatalErr)
		return cli.ExitUsage
	case r.readErr != nil:
		r.log.Printf("%v", r.readErr)
		return cli.ExitUsage
	case r.failures.Load() > 0:
		return cli.ExitFailure
	}
	return cli.ExitOK
}

// record counts the result of a line, says why it failed and writes it to
// --failed and --report. An error stops the run: the local state failed.
func (r *run) record(o *outcome) error {
	r.account(o)
	var err error
	if o.res.Status == download.Failed {
		if o.res.Fatal {
			err = o.res.Err
		} else {
			r.logFailure(o)
			err = r.recordFailure(o)
		}
	}
	// The report of a line that stopped the run is still written.
	if rerr := r.writeReport(o); err == nil {
		err = rerr
	}
	return err
}

// summary is the last line of a run: its counts, bytes and rate, or, when
// it ended by itself with nothing downloaded and nothing failed, that there
// was nothing to do and why.
func (r *run) summary(ctx context.Context, el time.Duration) string {
	done, exists, failed := r.done.Load(), r.exists.Load(), r.failures.Load()
	if ctx.Err() == nil && r.readErr == nil && done == 0 && failed == 0 {
		switch exists {
		case 0:
			return "nothing to do: no URL in the input"
		case 1:
			return "nothing to do: 1 file already there"
		}
		return fmt.Sprintf("nothing to do: %d files already there", exists)
	}
	return fmt.Sprintf("%d done, %d already there, %d failed; %s in %s (%s/s)", done, exists, failed,
		size(r.bytes.Load()), el.Round(time.Millisecond), size(int64(float64(r.bytes.Load())/max(el.Seconds(), 1e-3))))
}

func (r *run) account(o *outcome) {
	switch o.res.Status {
	case download.Done:
		r.done.Add(1)
	case download.Exists:
		r.exists.Add(1)
	case download.Failed:
		r.failures.Add(1)
	}
}

// read turns stdin lines into items until the input ends or ctx is done.
func (r *run) read(ctx context.Context, stdin io.Reader, items chan<- *item) {
	defer close(items)
	lr := lines.NewReader(stdin)
	for num := int64(1); ; num++ {
		line, terminated, err := lr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			r.readErr = fmt.Errorf("read stdin: %w", err)
			return
		}
		if !terminated {
			r.log.Printf("stdin: the last line has no newline (was its writer interrupted?); ignored: %s", shortLine(string(line)))
			return
		}
		// One copy of the line, which the window holds until the line is
		// settled: its key, its URL and its echo are parts of it.
		s := string(line)
		key := lines.Key(s)
		if len(key) == 0 || key[0] == '#' {
			continue
		}
		it := r.parse(s, key)
		it.num = num
		select {
		case items <- it:
		case <-ctx.Done():
			return
		}
	}
}

// parse reads URL, URL<TAB>PATH or URL<TAB>PATH<TAB>ALGO=HEX, where an
// empty PATH is the default name, the one of --layout.
func (r *run) parse(line, key string) *item {
	it := &item{line: line}
	rawURL, path, explicit := strings.Cut(key, "\t")
	it.url = strings.Trim(rawURL, " \t")
	path, sum, checked := strings.Cut(path, "\t")
	if path = strings.Trim(path, " \t"); checked && path == "" {
		explicit = false
	}
	name, u, err := outname.Layout(r.c.Layout).Parse(it.url)
	if err == nil && explicit {
		name, err = outname.Explicit(path)
	}
	switch {
	case err != nil || !checked:
	case strings.Contains(sum, "\t"):
		err = errors.New("more than three fields: want URL, URL<TAB>PATH or URL<TAB>PATH<TAB>ALGO=HEX (PATH may be empty)")
	default:
		it.sum, err = download.ParseChecksum(strings.Trim(sum, " "))
	}
	if err != nil {
		it.err = err
		return it
	}
	it.host = download.HostKey(u)
	it.path = filepath.Join(r.c.Dir, filepath.FromSlash(name))
	return it
}

// dispatch numbers items and hands them to the scheduler, keeping the
// window of lines between the oldest unsettled and the newest started under
// its cap. It sends the number of items dispatched when it stops.
func (r *run) dispatch(ctx context.Context, items <-chan *item, window chan struct{}, dispatched chan<- int64) {
	var n int64
	defer func() { dispatched <- n }()
	for {
		var it *item
		var ok bool
		select {
		case it, ok = <-items:
		case <-ctx.Done():
			return
		}
		if !ok {
			return
		}
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
			return
		}
		it.seq = n
		n++
		switch {
		case it.err != nil:
			r.results <- &outcome{it: it, res: download.Result{URL: it.url, Status: download.Failed, Err: it.err}}
		case !r.sched.add(it): // stopped meanwhile
			r.results <- &outcome{it: it, res: download.Result{URL: it.url, Path: it.path, Status: download.Canceled}}
		}
	}
}

// work downloads the line of t, which holds a slot.
func (r *run) work(ctx context.Context, t *ticket) {
	it := t.it
	res := download.Result{URL: it.url, Path: it.path, Status: download.Canceled}
	held := func() {}
	if ctx.Err() == nil {
		res = r.fetcher.FetchWith(withTicket(ctx, t), it.url, it.host, it.path, download.Options{Checksum: it.sum, Held: &held})
	}
	// The result is in before the slot it still holds (its last attempt's,
	// or the one it was launched with) goes to the next line, so with -j 1
	// results (and --failed records) come in input order. The send does not
	// block: results has room for the whole window.
	r.results <- &outcome{it: it, res: res}
	held()
	r.sched.done(t)
}

// logFailure names a failed line on stderr: its URL, once, then the reason;
// a line that cannot be downloaded at all (bad input) also by its number.
func (r *run) logFailure(o *outcome) {
	if o.it.err != nil {
		r.log.Printf("stdin:%d: %s: %v", o.it.num, shortLine(o.it.url), o.res.Err)
		return
	}
	r.log.Printf("%s: %v", shortLine(o.it.url), o.res.Err)
}

// recordFailure writes a failed line to --failed, durably, before the line
// counts as settled.
func (r *run) recordFailure(o *outcome) error {
	if r.failed == nil {
		return nil
	}
	reason := redact.Mask(strings.ReplaceAll(o.res.Err.Error(), "\n", " "))
	if _, err := r.failed.WriteString("# " + reason + "\n" + o.it.line + "\n"); err != nil {
		return fmt.Errorf("write %s: %w", r.c.Failed, err)
	}
	if err := r.failed.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", r.c.Failed, err)
	}
	return nil
}

type reportLine struct {
	URL        string `json:"url"`
	FinalURL   string `json:"final_url"`
	Path       string `json:"path"`
	Status     string `json:"status"`
	HTTPStatus int    `json:"http_status"`
	Bytes      int64  `json:"bytes"`
	Attempts   int    `json:"attempts"`
	DurationMS int64  `json:"duration_ms"`
	Error      string `json:"error"`
	SHA256     string `json:"sha256"` // of the file, computed while it streamed; "" if not
}

func (r *run) writeReport(o *outcome) error {
	if r.report == nil || o.res.Status == download.Canceled {
		return nil
	}
	rl := reportLine{
		URL: redact.Mask(o.it.url), FinalURL: redact.Mask(o.res.FinalURL), Path: r.c.reportPath(o.it.path), Status: string(o.res.Status),
		HTTPStatus: o.res.HTTPStatus, Bytes: o.res.Bytes, Attempts: o.res.Attempts,
		DurationMS: o.res.Duration.Milliseconds(), SHA256: o.res.SHA256,
	}
	if o.res.Err != nil {
		rl.Error = redact.Mask(o.res.Err.Error())
	}
	b, _ := json.Marshal(rl)
	if _, err := r.report.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write report %s: %w", r.c.Report, err)
	}
	return nil
}

// size formats a byte count.
func size(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
