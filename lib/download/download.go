// Package download fetches one URL into one durable file: the body goes to a
// ".part" file beside the destination, which is fsynced and renamed into place
// and its directory fsynced, so a file under its final name is always whole.
//
// The .part file is the resume point. It is kept on interruption and on
// retryable errors, and a later attempt (in this run or the next) continues it
// with a Range request guarded by If-Range, so a resource that changed in the
// meantime is fetched again from zero instead of being glued onto old bytes.
// The validator (ETag, else Last-Modified) of the bytes in a .part file is kept
// in a small sidecar file whose name also contains ".part", written when an
// attempt ends unfinished or the file passes 1 MiB (see saveAfter).
package download

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ck-tools/ck/lib/durable"
	"github.com/ck-tools/ck/lib/outname"
)

// Status is how a download ended.
type Status string

// The statuses of a Result.
const (
	Done     Status = "done"     // downloaded in this run
	Exists   Status = "exists"   // the final file was already there: no request made
	Failed   Status = "failed"   // failed for good (after retries, or at once for a 4xx)
	Canceled Status = "canceled" // interrupted: neither done nor failed, the .part file kept
)

// Result is the outcome of one Fetch.
type Result struct {
	URL        string
	FinalURL   string // after redirects
	Path       string // the final file
	Status     Status
	HTTPStatus int   // of the last response, 0 if none
	Bytes      int64 // body bytes received in this run
	Attempts   int
	Duration   time.Duration
	Err        error // why it failed, for Failed; nil otherwise
	// Fatal is set when the error is about local state (the disk, the output
	// directory): the whole run must stop, not only this URL.
	Fatal bool
}

// Pacer is asked before every request to a host and told of Retry-After.
type Pacer interface {
	// Wait returns when a request to host may start, or ctx's error. It is
	// called before a slot of the global limit is taken, so that waiting
	// for one host does not keep a slot from the others.
	Wait(ctx context.Context, host string) error
	// Start is called once the slot is taken, just before the request: it
	// waits again if another request to host started meanwhile, and records
	// the start.
	Start(ctx context.Context, host string) error
	// Hold keeps every request to host from starting before t.
	Hold(host string, t time.Time)
}

// Fetcher downloads URLs. Its fields are its settings; the zero value of an
// optional field means its default.
type Fetcher struct {
	Client       *http.Client
	Retries      int           // further attempts after the first, on retryable errors
	Backoff      time.Duration // wait before the first retry, doubled each time, with jitter
	MaxBackoff   time.Duration // cap of the wait between tries, Retry-After included
	StallTimeout time.Duration // no body bytes for this long: the attempt fails (retryable)
	Force        bool          // download even if the final file exists
	Pacer        Pacer         // nil: no pacing
	Dirs         *durable.DirSyncer
	Progress     func(n int64) // called with each chunk of body bytes received; may be nil
	// BeforeAttempt, if set, is called before each request, after pacing:
	// the place for a limit over all hosts. release is called after it.
	BeforeAttempt func(ctx context.Context) (release func(), err error)

	madeDirs sync.Map // directories known to exist
}

// MaxRedirects is how many redirects one request follows.
const MaxRedirects = 10

var errTooManyRedirects = fmt.Errorf("stopped after %d redirects", MaxRedirects)

// NewClient returns the HTTP client ckfetch uses: connect timeout, a header
// timeout equal to the stall timeout (0: none), no transparent compression
// (the bytes on disk are the bytes of the resource), idle connections kept
// for jobs downloads over all hosts and perHost per host, redirects followed
// up to MaxRedirects, and no overall time limit, so large files finish.
func NewClient(connect, stall time.Duration, jobs, perHost int) *http.Client {
	dialer := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          2 * jobs,
		MaxIdleConnsPerHost:   perHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   connect,
		ResponseHeaderTimeout: stall,
		DisableCompression:    true,
		ForceAttemptHTTP2:     true,
		ReadBufferSize:        32 << 10, // headers and a small body in one read
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > MaxRedirects {
				return errTooManyRedirects
			}
			return nil
		},
	}
}

// fatalError marks an error about local state.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }
func (e fatalError) Unwrap() error { return e.err }

func fatal(err error) error { return fatalError{err} }

// retryable marks an error worth another attempt, with the server's
// Retry-After if it gave one.
type retryable struct {
	err   error
	after time.Duration
}

func (e retryable) Error() string { return e.err.Error() }
func (e retryable) Unwrap() error { return e.err }

// Fetch downloads rawURL into path (the final name). host keys the pacing.
func (f *Fetcher) Fetch(ctx context.Context, rawURL, host, path string) (res Result) {
	start := time.Now()
	res = Result{URL: rawURL, FinalURL: rawURL, Path: path}
	defer func() { res.Duration = time.Since(start) }()
	if !f.Force {
		if _, err := os.Stat(path); err == nil {
			res.Status = Exists
			return res
		}
	}
	if err := f.mkdir(filepath.Dir(path)); err != nil {
		return f.end(&res, err)
	}
	part, err := openPart(path)
	if err != nil {
		return f.end(&res, err)
	}
	defer func() {
		if err := part.close(); err != nil && !res.Fatal {
			res.Status, res.Err, res.Fatal = Failed, err, true
		}
	}()
	if !f.Force && part.contended {
		if _, err := os.Stat(path); err == nil { // another download finished it while we waited
			res.Status = Exists
			return res
		}
	}

	backoff := f.Backoff
	for {
		res.Attempts++
		err := f.attempt(ctx, part, rawURL, host, &res)
		if err == nil {
			if err := f.finish(part, path); err != nil {
				return f.end(&res, err)
			}
			res.Status = Done
			return res
		}
		if ctx.Err() != nil {
			return f.end(&res, context.Canceled)
		}
		var r retryable
		if !errors.As(err, &r) || res.Attempts > f.Retries {
			return f.end(&res, err)
		}
		wait := backoff/2 + rand.N(backoff/2+1) // jitter keeps many clients apart
		backoff = min(2*backoff, f.MaxBackoff)
		if r.after > 0 {
			wait = min(r.after, f.MaxBackoff)
			if f.Pacer != nil {
				f.Pacer.Hold(host, time.Now().Add(wait))
			}
		}
		select {
		case <-ctx.Done():
			return f.end(&res, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// mkdir creates dir once per run (a cache saves a stat per download).
func (f *Fetcher) mkdir(dir string) error {
	if _, ok := f.madeDirs.Load(dir); ok {
		return nil
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return fatal(fmt.Errorf("create output directory: %w", err))
	}
	f.madeDirs.Store(dir, true)
	return nil
}

// end records err in res, telling interruption and local failures apart.
func (f *Fetcher) end(res *Result, err error) Result {
	var fe fatalError
	switch {
	case errors.As(err, &fe):
		res.Status, res.Err, res.Fatal = Failed, fe.err, true
	case errors.Is(err, context.Canceled):
		res.Status = Canceled
	default:
		res.Status, res.Err = Failed, err
	}
	return *res
}

// attempt makes one request and appends its body to the part file. A nil
// error means the part file now holds the whole resource.
func (f *Fetcher) attempt(ctx context.Context, part *partFile, rawURL, host string, res *Result) error {
	if f.Pacer != nil {
		if err := f.Pacer.Wait(ctx, host); err != nil {
			return err
		}
	}
	if f.BeforeAttempt != nil {
		release, err := f.BeforeAttempt(ctx)
		if err != nil {
			return err
		}
		defer release()
	}
	if f.Pacer != nil {
		if err := f.Pacer.Start(ctx, host); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return fmt.Errorf("invalid URL: %w", err)
	}
	req.Header.Set("Accept-Encoding", "identity") // the bytes on disk are the resource's bytes
	offset := part.size
	if offset > 0 && part.validator != "" {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		req.Header.Set("If-Range", part.validator)
	} else {
		offset = 0
	}
	stall := newStallTimer(f.StallTimeout, cancel)
	defer stall.stop()
	resp, err := f.Client.Do(req)
	if errors.Is(err, errTooManyRedirects) {
		return errTooManyRedirects // trying again would go round the same loop
	}
	if err != nil {
		return netError(ctx, err)
	}
	defer resp.Body.Close()
	res.HTTPStatus = resp.StatusCode
	res.FinalURL = resp.Request.URL.String()

	switch {
	case resp.StatusCode == http.StatusPartialContent:
		startAt, _, ok := contentRange(resp.Header.Get("Content-Range"))
		if offset == 0 || !ok || startAt != offset {
			// Not the range we asked for: start over rather than guess.
			if err := part.reset(""); err != nil {
				return err
			}
			return retryable{err: fmt.Errorf("server sent range %q for a request from byte %d", resp.Header.Get("Content-Range"), offset)}
		}
	case resp.StatusCode == http.StatusOK:
		offset = 0
		if err := part.reset(validator(resp.Header)); err != nil {
			return err
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0:
		if _, total, ok := contentRange(resp.Header.Get("Content-Range")); ok && total == part.size {
			return nil // killed between the last byte and the rename: the part is whole
		}
		if err := part.reset(""); err != nil {
			return err
		}
		return retryable{err: errors.New("HTTP 416: the partial file does not fit the resource any more; starting again")}
	default:
		err := fmt.Errorf("HTTP %s", resp.Status)
		if resp.StatusCode == 408 || resp.StatusCode == 429 || resp.StatusCode >= 500 {
			return retryable{err: err, after: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
		}
		return err
	}

	n, err := part.copyFrom(stall.reader(resp.Body), f.Progress)
	res.Bytes += n
	if err != nil {
		var fe fatalError
		if errors.As(err, &fe) {
			return err
		}
		return netError(ctx, err)
	}
	if resp.ContentLength >= 0 && part.size != offset+resp.ContentLength {
		return retryable{err: fmt.Errorf("truncated body: %d of %d bytes", part.size-offset, resp.ContentLength)}
	}
	return nil
}

// netError classifies a transport error: every network failure is worth a
// retry, unless the run itself was interrupted.
func netError(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
		return retryable{err: cause}
	}
	if ctx.Err() != nil {
		return context.Canceled
	}
	return retryable{err: err}
}

// finish makes the part file durable under its final name.
func (f *Fetcher) finish(part *partFile, path string) error {
	if err := unix.Fsync(part.fd); err != nil {
		return fatal(fmt.Errorf("sync %s: %w", part.name, err))
	}
	// unix.Rename: os.Rename would first lstat the destination.
	if err := unix.Rename(part.name, path); err != nil {
		return fatal(fmt.Errorf("rename %s: %w", part.name, err))
	}
	part.done()
	if err := f.Dirs.Sync(filepath.Dir(path)); err != nil {
		return fatal(err)
	}
	return nil
}

// validator returns the value for If-Range: a strong ETag, else Last-Modified.
func validator(h http.Header) string {
	if etag := h.Get("ETag"); etag != "" && !strings.HasPrefix(etag, "W/") {
		return etag
	}
	return h.Get("Last-Modified")
}

// contentRange parses "bytes START-END/TOTAL" and "bytes */TOTAL".
func contentRange(s string) (start, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	span, size, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	total, err := strconv.ParseInt(size, 10, 64)
	if err != nil {
		total = -1
	}
	if span == "*" {
		return -1, total, err == nil
	}
	first, _, found := strings.Cut(span, "-")
	start, err2 := strconv.ParseInt(first, 10, 64)
	return start, total, found && err2 == nil
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

var errStalled = errors.New("stalled: no data received within the stall timeout")

// stallTimer cancels an attempt when no body byte arrives for a while.
type stallTimer struct {
	d time.Duration
	t *time.Timer
}

func newStallTimer(d time.Duration, cancel context.CancelCauseFunc) *stallTimer {
	s := &stallTimer{d: d}
	if d > 0 {
		s.t = time.AfterFunc(d, func() { cancel(errStalled) })
	}
	return s
}

func (s *stallTimer) stop() {
	if s.t != nil {
		s.t.Stop()
	}
}

func (s *stallTimer) reader(r io.Reader) io.Reader {
	if s.t == nil {
		return r
	}
	return readerFunc(func(p []byte) (int, error) {
		n, err := r.Read(p)
		if n > 0 {
			s.t.Reset(s.d)
		}
		return n, err
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// saveAfter is the size from which a .part file's validator is written down
// while the download runs. Below it, the validator is written only when an
// attempt ends without finishing: a small file killed with SIGKILL restarts
// from zero, which costs less than one more file per download would.
const saveAfter = 1 << 20

// partFile is an open, locked .part file and the validator of its bytes.
type partFile struct {
	name      string // PATH.part
	meta      string // PATH.part.etag: the validator, once saved
	fd        int    // a raw descriptor: os.File's poller bookkeeping costs system calls
	size      int64
	validator string
	saved     bool // the meta file holds validator
	contended bool // another download of the same file held it first
	finished  bool
}

// openPart opens (or creates) the part file of path and locks it, so two
// ckfetch processes sharing an output directory never write one file at once.
func openPart(path string) (*partFile, error) {
	p := &partFile{name: path + outname.PartSuffix, meta: path + outname.PartSuffix + ".etag"}
	for {
		fd, err := unix.Open(p.name, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o666)
		if err != nil {
			return nil, fatal(fmt.Errorf("open %s: %w", p.name, err))
		}
		waited := false
		if err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err == unix.EWOULDBLOCK {
			waited = true
			for err = unix.Flock(fd, unix.LOCK_EX); err == unix.EINTR; {
				err = unix.Flock(fd, unix.LOCK_EX)
			}
		}
		if err != nil {
			unix.Close(fd)
			return nil, fatal(fmt.Errorf("lock %s: %w", p.name, err))
		}
		var st, now unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, fatal(fmt.Errorf("stat %s: %w", p.name, err))
		}
		// The holder before us may have finished (renamed) or removed the
		// file between our open and our lock: then this one is no longer at
		// that name, and must not be touched.
		if err := unix.Stat(p.name, &now); err != nil || now.Ino != st.Ino || now.Dev != st.Dev {
			unix.Close(fd)
			p.contended = true
			continue
		}
		p.fd, p.size = fd, st.Size
		p.contended = p.contended || waited
		break
	}
	if p.size == 0 {
		return p, nil
	}
	if v, err := os.ReadFile(p.meta); err == nil {
		p.validator, p.saved = string(v), true
	}
	if _, err := unix.Seek(p.fd, p.size, io.SeekStart); err != nil {
		p.close()
		return nil, fatal(fmt.Errorf("seek %s: %w", p.name, err))
	}
	return p, nil
}

// reset empties the part file for the bytes of a new response, whose
// validator is given.
func (p *partFile) reset(validator string) error {
	if p.size > 0 {
		if err := unix.Ftruncate(p.fd, 0); err != nil {
			return fatal(fmt.Errorf("truncate %s: %w", p.name, err))
		}
		if _, err := unix.Seek(p.fd, 0, io.SeekStart); err != nil {
			return fatal(fmt.Errorf("seek %s: %w", p.name, err))
		}
	}
	if p.saved {
		// The old validator must not outlive the old bytes.
		if err := os.Remove(p.meta); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fatal(fmt.Errorf("remove %s: %w", p.meta, err))
		}
		p.saved = false
	}
	p.size, p.validator = 0, validator
	return nil
}

// save writes the validator down, so a later run can resume the part file.
func (p *partFile) save() error {
	if p.saved || p.validator == "" || p.size == 0 {
		return nil
	}
	if err := os.WriteFile(p.meta, []byte(p.validator), 0o666); err != nil {
		return fatal(fmt.Errorf("write %s: %w", p.meta, err))
	}
	p.saved = true
	return nil
}

// writeAll writes b to fd, as os.File.Write would, without its bookkeeping.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

var bufPool = make(chan []byte, 64)

// copyFrom appends r to the part file. Errors writing are fatal; errors
// reading are the network's.
func (p *partFile) copyFrom(r io.Reader, progress func(int64)) (int64, error) {
	var buf []byte
	select {
	case buf = <-bufPool:
	default:
		buf = make([]byte, 256<<10)
	}
	defer func() {
		select {
		case bufPool <- buf:
		default:
		}
	}()
	var total int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if err := writeAll(p.fd, buf[:n]); err != nil {
				return total, fatal(fmt.Errorf("write %s: %w", p.name, err))
			}
			p.size += int64(n)
			total += int64(n)
			if progress != nil {
				progress(int64(n))
			}
			if p.size >= saveAfter && !p.saved {
				if err := p.save(); err != nil {
					return total, err
				}
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// done is called after the rename: the part file and its sidecar are gone.
func (p *partFile) done() {
	p.finished = true
	if p.saved {
		os.Remove(p.meta)
	}
}

// close releases the lock. An unfinished part file keeps its validator for
// the next run; an empty one is removed, since it holds nothing to resume.
func (p *partFile) close() error {
	defer unix.Close(p.fd)
	if p.finished {
		return nil
	}
	if p.size == 0 {
		os.Remove(p.name)
		if p.saved {
			os.Remove(p.meta)
		}
		return nil
	}
	return p.save()
}
