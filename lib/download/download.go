// Package download fetches one URL into one durable file: the body goes to a
// ".part" file beside the destination, which is fsynced and renamed into place
// and its directory fsynced, so a file under its final name is always whole.
// A fresh download under 64 KiB (saveAfter) writes into an unnamed file
// (O_TMPFILE) instead, fsynced and linked under its final name, which linkat
// never replaces: no lock, no second look at the final name (see createPart).
// A file is final only when its size equals the total the server stated
// (a 206's Content-Range SIZE, a 200's Content-Length); a 206 that ends before
// it keeps its bytes and the next request asks for the rest (an attempt that
// brings no byte is a failed attempt). A 200 without Content-Length is final
// at a clean end of its body: there no client can see a truncation.
//
// The .part file is the resume point. It is kept on interruption and on
// retryable errors, and a later attempt (in this run or the next) continues it
// with a Range request guarded by If-Range, so a resource that changed in the
// meantime is fetched again from zero instead of being glued onto old bytes.
// If-Range carries a strong ETag, or a Last-Modified at least one second older
// than the response's Date (a strong validator, RFC 9110 8.8.2.2); with only
// a weak one there is no resume. Every 206 must carry the stored validator:
// one from a server that ignores If-Range drops the .part.
//
// A .part file's record (partRecord: the validator, the length known to be
// durable, and the boot id) is an extended attribute of the file, user.ck.part,
// or the sidecar PATH.part.etag where the file system refuses xattrs. It is
// written before the .part reaches 64 KiB (saveAfter), so after kill -9 any
// .part of that size resumes; smaller ones cost nothing besides their bytes
// and restart from zero. The bytes are fsynced at every 8 MiB (syncEvery) and
// at a clean stop, each time with the record updated. A .part opened in
// another boot than its record's (/proc/sys/kernel/random/boot_id) is cut to
// its durable length, or dropped: after a power loss it never carries bytes
// that were not fsynced. In the same boot everything received is kept.
//
// Error answers (4xx, 5xx, 416, a refused 206) are read up to 64 KiB before
// they are closed, so their connection is used again.
//
// A checksum (Options.Checksum) and the sha256 of Result are computed while
// the bytes are written, the bytes a resumed .part already held first (read
// once), and the checksum is checked before the rename (see sum.go). Nothing
// is hashed when neither is asked for.
package download

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"
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
	// SHA256 is the hex sha256 of the file, when Fetcher.SHA256 is set or
	// the checksum is sha256: for Done, computed while the bytes streamed
	// (and over a resumed .part's earlier bytes, read once); for Exists,
	// only when a checksum had the file read. "" otherwise.
	SHA256 string
	// Fatal is set when the error is about local state (the disk, the output
	// directory): the whole run must stop, not only this URL.
	Fatal bool
}

// Pacer is asked before every request to a host and told of Retry-After.
// Every redirect hop is a request to the host it goes to.
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
	StallTimeout time.Duration // no body bytes for this long: the attempt fails (retryable); fixed once the Fetcher has made an attempt
	Force        bool          // download even if the final file exists
	Pacer        Pacer         // nil: no pacing
	Dirs         DirSyncer     // fsyncs directories (durable.DirSyncer: group commit)
	// Root is the output directory. Every directory between it and a file
	// is fsynced into its parent, once per run, before the file counts as
	// done, even one an earlier run made and may not have synced. Empty:
	// only the directories that Fetch creates are synced.
	Root     string
	Progress func(n int64) // called with each chunk of body bytes received; may be nil
	// SHA256 computes the sha256 of every file downloaded (Result.SHA256),
	// while its bytes stream: CPU only, no second read.
	SHA256 bool
	// BeforeAttempt, if set, is called before each request, after pacing,
	// with the host (host:port) the request goes to: every redirect hop is
	// a request of its own, to the host of its URL. The place for a limit
	// over all hosts and per host. release is called when the request's
	// response was a redirect (before the next hop asks again), after a
	// failed attempt that is retried (before its backoff), or, for the
	// last attempt, once the download has ended (the file of a successful
	// one is final: fsynced, renamed, its directory synced) and, with
	// Options.Held, its caller has taken the result in: the slot of the
	// last hop covers the whole download, so with one slot the next line
	// never starts before this one is settled. The .part file is open (and
	// locked) only while a slot is held.
	BeforeAttempt func(ctx context.Context, host string) (release func(), err error)
	// Room, if set, is called before a .part (or unnamed) file is opened,
	// once OpenFiles counts it: the connection pool that shares the run's
	// descriptors with the files closes an idle connection then if they
	// would be over its limit (Pool.Room).
	Room func()

	known    knownDirs    // directories made and synced in this run (bounded)
	made     madeNames    // final names this run made in fresh directories
	once     sync.Once    // makes inFlight
	inFlight *flights     // the hops in flight, watched for stalls; made at the first attempt
	noAnon   atomic.Bool  // the output's file system has no O_TMPFILE (see createPart)
	files    atomic.Int64 // .part files open, or about to be opened

	// What every request carries (see setHeaders for where each goes).
	// Header holds the -H headers (ParseHeaders); Authorization and Cookie
	// among them go only to the input URL's scheme, host and port.
	Header http.Header
	// UserAgent is the User-Agent of every request; "": net/http's.
	UserAgent string
	// Netrc gives credentials per host; nil: none.
	Netrc *Netrc
	// Rate caps the body bytes per second read by all downloads of the
	// Fetcher together (NewRateLimit); nil: no limit.
	Rate *rate.Limiter
	// Store, if set, keeps the final files instead of the disk (store.go):
	// the .part files are made under Root (the spool) as on disk, and a
	// whole one is fsynced, Put and removed; the final name is looked for
	// in the Store. nil: the disk.
	Store Store
}

// Options are the settings of one Fetch that change from line to line.
type Options struct {
	// Checksum, if not zero, is the digest the file must have. It is
	// computed while the bytes stream (over the bytes a resumed .part
	// already holds too, read once) and checked before the rename: a
	// mismatch fails the download and drops the .part. A final file already
	// there is read and checked before it counts as done; a mismatch there
	// fails the download and leaves the file as it is (Force downloads it
	// again).
	Checksum Checksum
	// Held, if not nil, receives the release of the slot (BeforeAttempt's)
	// that the download still holds when FetchWith returns: its last
	// attempt's, done or failed. The caller calls it once it has taken the
	// result in, so that with one slot the next line never starts, nor
	// ends, before this one's result is in (a no-op when it holds none).
	// Nil: FetchWith calls it before it returns.
	Held *func()
}

// job is one Fetch on its way.
type job struct {
	rawURL string
	host   string // of rawURL: the first hop's
	path   string // the final name
	dir    string // its directory
	// part is the open and locked .part file, nil when it is not open: it
	// is opened (an existing one) when a hop holds its slot, or created
	// when a response brings the bytes of the file, and closed before the
	// slot is given back.
	part     *partFile
	lastHost string // the host that sent the last response (Retry-After holds it)
	// digest hashes the file's bytes as they stream (nil: nothing to
	// compute); it outlives the .part's openings, and each opening
	// catches it up with the bytes it does not cover yet (see openExisting).
	digest *digest
}

// closePart closes j's .part file if it is open (see partFile.close). An
// unnamed one that is kept gets its name there: its directory is not fresh
// any more.
func (f *Fetcher) closePart(j *job) error {
	p := j.part
	if p == nil {
		return nil
	}
	if p.anon && p.keeps() {
		f.known.named(j.dir)
	}
	err := p.close()
	j.part = nil
	f.files.Add(-1)
	return err
}

// holdFile counts a file about to be opened in OpenFiles, and lets Room
// make room for its descriptor; setPart keeps or ends the count.
func (f *Fetcher) holdFile() {
	f.files.Add(1)
	if f.Room != nil {
		f.Room()
	}
}

// setPart makes p, just opened after holdFile, j's .part file (nil: none,
// there was none to open, or its open failed).
func (f *Fetcher) setPart(j *job, p *partFile) {
	j.part = p
	if p == nil {
		f.files.Add(-1)
	}
}

// OpenFiles is the number of .part files and directories open
// (download.Pool.Files: they share the run's descriptors with the
// connections); directories if Dirs tells them (durable.DirSyncer does).
func (f *Fetcher) OpenFiles() int {
	n := int(f.files.Load())
	if d, ok := f.Dirs.(interface{ Open() int }); ok {
		n += d.Open()
	}
	return n
}

// errFound ends an attempt that found, once it held the .part lock, the
// final file done by another download of the same path: the line counts as
// done without a request (or with no further one).
var errFound = errors.New("the final file is there")

// Fetch downloads rawURL into path (the final name). host keys the pacing
// of the first request; each redirect hop is paced by its own host.
//
// Nothing is created for a line before a response brings its bytes: the
// directories and the .part file are made then (an existing .part is
// opened, to resume it, when a request holds its slot), so a line that
// fails with a 404, a refused connection or a DNS error leaves nothing.
func (f *Fetcher) Fetch(ctx context.Context, rawURL, host, path string) Result {
	return f.FetchWith(ctx, rawURL, host, path, Options{})
}

// flights returns the Fetcher's hops in flight.
func (f *Fetcher) flights() *flights {
	f.once.Do(func() { f.inFlight = newFlights(max(f.StallTimeout, 0)) })
	return f.inFlight
}

// FetchWith is Fetch with the settings of o.
func (f *Fetcher) FetchWith(ctx context.Context, rawURL, host, path string, o Options) (res Result) {
	start := time.Now()
	res = Result{URL: rawURL, FinalURL: rawURL, Path: path}
	if f.Store != nil {
		res.Path = f.Store.Where(f.storeName(path))
	}
	defer func() { res.Duration = time.Since(start) }()
	// held is the release of the slot of the attempt that ended last: it
	// is given back before the next attempt (or its backoff), and the last
	// one's is left to the caller (o.Held) or given back on return, after
	// the .part is closed (deferred first, so it runs last).
	held := func() {}
	defer func() {
		if o.Held != nil {
			*o.Held = held
		} else {
			held()
		}
	}()
	dir := filepath.Dir(path)
	if f.looksFirst(path, dir) {
		found, err := f.final(ctx, rawURL, path)
		if err != nil {
			return f.end(&res, err)
		}
		if found && !f.Force {
			return f.exists(&res, path, o)
		}
	}
	j := &job{rawURL: rawURL, host: host, path: path, dir: dir, lastHost: host, digest: newDigest(o.Checksum, f.SHA256)}
	defer func() {
		if err := f.closePart(j); err != nil && !res.Fatal {
			res.Status, res.Err, res.Fatal = Failed, err, true
		}
	}()

	backoff := f.Backoff
	failures := 0 // attempts that failed; a short 206 that brought bytes is not one
	for {
		res.Attempts++
		held()
		held = func() {}
		err := f.attempt(ctx, j, &res, &held)
		if err == errFound { // another download of this path finished it
			return f.exists(&res, path, o)
		}
		if err == nil {
			err := f.finish(ctx, j.part, rawURL, path, dir)
			if cerr := f.closePart(j); err == nil {
				err = cerr
			}
			if err == errFound { // made meanwhile by another download of path
				return f.exists(&res, path, o)
			}
			if err != nil {
				return f.end(&res, err)
			}
			if f.known.fresh(dir) {
				f.made.add(path)
			}
			res.Status, res.SHA256 = Done, j.digest.sha256()
			return res
		}
		if ctx.Err() != nil {
			return f.end(&res, context.Canceled)
		}
		if err == errShort {
			continue // each one brings a byte at least: the loop ends
		}
		failures++
		var r retryable
		if !errors.As(err, &r) || failures > f.Retries {
			return f.end(&res, err)
		}
		held() // no slot is held through the backoff
		held = func() {}
		wait := backoff/2 + rand.N(backoff/2+1) // jitter keeps many clients apart
		backoff = min(2*backoff, f.MaxBackoff)
		if r.after > 0 {
			wait = min(r.after, f.MaxBackoff)
			if f.Pacer != nil {
				f.Pacer.Hold(j.lastHost, time.Now().Add(wait)) // the host that said so
			}
		}
		select {
		case <-ctx.Done():
			return f.end(&res, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// looksFirst reports whether FetchWith looks at the final name before the
// first request. It does not in a fresh directory (knownDirs: made by this
// run, no named .part made in it since) on disk without --force, at a name
// this run has not made there (madeNames): only this run can have put a
// file in such a directory, or another process sharing the output, and the
// download would find that one anyway before it gives the name a file of its
// own, the unnamed .part's linkat never replacing one (finishAnon) and a
// named .part's lock being followed by a second look (createPart). So a
// small file costs a stat less, which on a busy directory is a tenth of
// ckfetch's CPU; a duplicate line still finds its file without a request.
func (f *Fetcher) looksFirst(path, dir string) bool {
	return f.Store != nil || f.Force || !f.known.fresh(dir) || f.made.mayHave(path)
}

// exists ends a Fetch whose final file was already there, once its bytes
// match the checksum if there is one, and its name is durable.
func (f *Fetcher) exists(res *Result, path string, o Options) Result {
	if f.Store != nil {
		// The object is durable in the store, and was checked against
		// the checksum before it was Put: it is not read back. A whole
		// .part a killed run left in the spool after its Put goes.
		dropSpooled(path)
		res.Status = Exists
		return *res
	}
	if !o.Checksum.IsZero() {
		d := newDigest(o.Checksum, f.SHA256)
		if err := f.checkFinal(path, d); err != nil {
			return f.end(res, err)
		}
		res.SHA256 = d.sha256()
	}
	if err := f.found(path); err != nil {
		return f.end(res, err)
	}
	res.Status = Exists
	return *res
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

// finish makes the part file durable under its final name path, in dir,
// with rawURL recorded as its owner, once its bytes match the checksum if
// there is one.
func (f *Fetcher) finish(ctx context.Context, part *partFile, rawURL, path, dir string) error {
	if err := part.verify(); err != nil {
		return err
	}
	if f.Store != nil {
		if err := unix.Fsync(part.fd); err != nil {
			return fatal(fmt.Errorf("sync %s: %w", part.name, err))
		}
		return f.put(ctx, part, rawURL, path)
	}
	if err := f.setOwner(part, rawURL); err != nil {
		return err
	}
	if err := unix.Fsync(part.fd); err != nil {
		return fatal(fmt.Errorf("sync %s: %w", part.name, err))
	}
	if part.anon {
		if err := f.finishAnon(ctx, part, rawURL, path); err != nil {
			return err
		}
	} else if err := unix.Rename(part.name, path); err != nil { // os.Rename would first lstat the destination
		return f.local(&os.LinkError{Op: "rename", Old: part.name, New: path, Err: err})
	}
	part.done()
	if err := f.Dirs.Sync(dir); err != nil {
		return fatal(err)
	}
	return nil
}

// finishAnon names the unnamed, fsynced .part of a download path, which
// linkat does only if the name is free: a download of the same path that
// ended meanwhile (another line, another ckfetch) made it, and then it is
// rawURL's file (errFound: the line is done), or another URL's (an error),
// as when Fetch found it there.
func (f *Fetcher) finishAnon(ctx context.Context, part *partFile, rawURL, path string) error {
	err := part.link(path)
	if err != unix.EEXIST {
		if err != nil {
			return f.local(&os.LinkError{Op: "link", Old: part.name, New: path, Err: err})
		}
		return nil
	}
	part.finished = true // its bytes are not kept: the name has a file
	found, ferr := f.final(ctx, rawURL, path)
	switch {
	case ferr != nil:
		return ferr
	case found:
		return errFound
	}
	return f.local(&os.LinkError{Op: "link", Old: part.name, New: path, Err: err})
}
