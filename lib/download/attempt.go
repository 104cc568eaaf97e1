package download

// One request and what its response means for the .part file.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// attempt makes one request, following its redirects one hop at a time,
// and appends the body of the answer to the .part file. Each hop is a
// request to the host of its URL and takes that host's slot and pacing
// (take); a hop answered by a redirect gives its slot back before the next
// one asks for its own. A nil error means the .part file (j.part, open) now
// holds the whole resource. The release of the last hop's slot is left in
// *held, for the caller to call once the file is final, or the attempt's
// result is in; any other error leaves the .part closed.
func (f *Fetcher) attempt(ctx context.Context, j *job, res *Result, held *func()) error {
	origin, err := url.Parse(j.rawURL)
	if err != nil {
		return fmt.Errorf("invalid URL: %w", err)
	}
	first := *origin // the hop's request cleans its URL (cleanURL): origin stays as written
	target, host := &first, j.host
	for n := 0; ; n++ {
		release, err := f.take(ctx, host)
		if err != nil {
			return err
		}
		next, err := f.hop(ctx, j, origin, target, host, n, res)
		if next != nil {
			release() // the next hop asks for the slot of its own host
			target, host = next, HostKey(next)
			continue
		}
		*held = release
		return err
	}
}

// take waits for a request to host to be allowed (Pacer, BeforeAttempt) and
// returns the release of its slot.
func (f *Fetcher) take(ctx context.Context, host string) (release func(), err error) {
	if f.Pacer != nil {
		if err := f.Pacer.Wait(ctx, host); err != nil {
			return nil, err
		}
	}
	release = func() {}
	if f.BeforeAttempt != nil {
		if release, err = f.BeforeAttempt(ctx, host); err != nil {
			return nil, err
		}
	}
	if f.Pacer != nil {
		if err := f.Pacer.Start(ctx, host); err != nil {
			release()
			return nil, err
		}
	}
	return release, nil
}

// HostKey is the key of the per-host limits of a URL (--per-host, -sleep,
// Retry-After, host health): its host, lower-cased, and its port, the
// scheme's default when it names none, so that http://H/ and
// http://h:80/ are one host, and http://h/ and https://h/ two.
func HostKey(u *url.URL) string {
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port(u))
}

// isRedirect reports whether a status is a redirect to follow: a GET is
// repeated as a GET for every one of them.
func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// errBadRedirect marks a redirect that cannot be followed (no Location, a
// malformed one, an unsupported scheme): the same answer comes back on every
// retry, so the line fails at once.
var errBadRedirect = errors.New("bad redirect")

// roundTrip sends req as the hop fl through the Client's Transport, not
// Client.Do: a redirect is the response (attempt follows it one hop at a
// time), and the client's own work per request (a copy of the headers for
// the redirects it would follow, its deadline, its cookie jar: none is
// used) costs CPU on every small file. A malformed Location is location's
// to tell. A Pool is told fl; another Transport gets a context that ends
// with it.
func (f *Fetcher) roundTrip(req *http.Request, fl *flight) (*http.Response, error) {
	var resp *http.Response
	var err error
	switch rt := f.Client.Transport.(type) {
	case *Pool:
		resp, err = rt.roundTrip(req, fl)
	case nil:
		resp, err = http.DefaultTransport.RoundTrip(req.WithContext(fl.context()))
	default:
		resp, err = rt.RoundTrip(req.WithContext(fl.context()))
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) && string(rh.RecordHeader[:]) == "HTTP/" {
		err = http.ErrSchemeMismatch // as Client.Do says it: an HTTP answer to https
	}
	return resp, err
}

// location returns where a redirect points, resolved against the URL of the
// request that got it.
func location(resp *http.Response, from *url.URL) (*url.URL, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil, fmt.Errorf("%w: HTTP %s without a Location header", errBadRedirect, resp.Status)
	}
	next, err := from.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("%w: HTTP %s to a malformed Location %q: %v", errBadRedirect, resp.Status, loc, err)
	}
	if next.Scheme != "http" && next.Scheme != "https" {
		return nil, fmt.Errorf("%w: HTTP %s to %s: unsupported protocol scheme %q", errBadRedirect, resp.Status, loc, next.Scheme)
	}
	if next.Host == "" {
		return nil, fmt.Errorf("%w: HTTP %s to a Location without a host %q", errBadRedirect, resp.Status, loc)
	}
	return next, nil
}

// hop makes the request of one hop, to target on host, whose slot is held;
// target becomes the request's URL.
// An existing .part is opened (and locked) first, so the request can ask for
// the rest of it: every hop carries the Range and If-Range of the .part,
// since any hop may be the one that answers with the content. A redirect
// returns the URL it points to, with its body drained (its connection goes
// back to the pool) and the .part closed; any other answer is the attempt's
// (see attempt), and a new .part is created only for a 200, the one answer
// that brings the file's bytes without one.
func (f *Fetcher) hop(ctx context.Context, j *job, origin, target *url.URL, host string, n int, res *Result) (next *url.URL, err error) {
	defer func() {
		if err == nil && next == nil {
			return // the answer, in the .part: the caller finishes it
		}
		if cerr := f.closePart(j); cerr != nil {
			next, err = nil, cerr
		}
	}()
	if err := f.openExisting(ctx, j, n == 0 && res.Attempts > 1); err != nil {
		return nil, err
	}
	req := newGet(target)
	cleanURL(req.URL)
	offset := f.hopHeaders(req, origin, j.part)
	fl := f.flights().start(ctx)
	defer fl.end()
	resp, err := f.roundTrip(req, fl)
	if err != nil {
		return nil, netError(ctx, fl, doError(err, req, n))
	}
	defer resp.Body.Close()
	j.lastHost = host
	res.HTTPStatus = resp.StatusCode
	res.FinalURL = req.URL.String()
	if isRedirect(resp.StatusCode) {
		f.drain(resp, fl)
		if n == MaxRedirects {
			return nil, errTooManyRedirects // trying again would go round the same loop
		}
		return location(resp, req.URL)
	}
	return nil, f.answer(ctx, j, resp, fl, offset, res)
}

// newGet returns a GET of u with no body, as http.NewRequest makes it from
// u's text, without parsing that again. Its context is Background: what
// ends the request is its hop's flight (see flights), which gives a context
// to what needs one.
func newGet(u *url.URL) *http.Request {
	u.Host = strings.TrimSuffix(u.Host, ":") // an empty port, as NewRequest drops it
	return &http.Request{Method: http.MethodGet, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: make(http.Header, 4), Host: u.Host}
}

// identity is the value of every request's Accept-Encoding.
var identity = []string{"identity"}

// hopHeaders sets the headers of one hop's request, and returns the offset
// of the .part it asks to continue from (0: the whole resource). This is
// the one place where a request's headers are set, on every hop alike;
// origin is the line's URL, for the headers that must not follow a redirect
// to another host.
// setHeaders comes first, so that Accept-Encoding and the resume headers
// below always win.
func (f *Fetcher) hopHeaders(req *http.Request, origin *url.URL, part *partFile) (offset int64) {
	f.setHeaders(req, origin)
	req.Header["Accept-Encoding"] = identity // the bytes on disk are the resource's bytes
	if part == nil || part.size == 0 || part.validator == "" {
		return 0
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-", part.size))
	req.Header.Set("If-Range", part.validator)
	return part.size
}

// openExisting opens and locks the .part of j's path if there is one,
// creating nothing. When another download held it first (it may have
// finished the file meanwhile), or recheck is set (a retry: time passed
// since Fetch looked), the final name is looked at again: errFound if it is
// done now.
//
// In a fresh directory (made by this run, no named .part made in it since:
// see knownDirs) there is none to look for, which saves a failed open per
// small file. Another process sharing the output directory could have made
// one there, for the same URL (shards share no line): then this download
// starts from zero, and whichever finishes last gives the name its file.
func (f *Fetcher) openExisting(ctx context.Context, j *job, recheck bool) error {
	if !recheck && f.known.fresh(j.dir) {
		return nil
	}
	f.holdFile()
	p, contended, err := openPart(ctx, j.path, false)
	f.setPart(j, p)
	if err != nil {
		return f.local(err)
	}
	if contended || recheck {
		if err := f.recheck(ctx, j); err != nil {
			return err
		}
	}
	return f.catchUp(ctx, j)
}

// catchUp gives the open .part j's digest, and hashes the bytes of it the
// digest does not cover yet (those an earlier run left, read once), before
// the request, so that no connection waits on the read.
func (f *Fetcher) catchUp(ctx context.Context, j *job) error {
	if j.part == nil || j.digest == nil {
		return nil
	}
	j.part.digest = j.digest
	if j.part.validator == "" {
		return nil // it cannot resume: the answer starts it again
	}
	return j.part.catchUp(ctx)
}

// createPart makes the directories of j's path and creates (or opens) its
// .part, for a response that brings the file's bytes. The final name is
// looked at again under the lock: a download of the same path that ended
// since Fetch looked may have made it (the file of another URL: an error;
// of this one: errFound).
//
// A fresh download of a known size under saveAfter on disk (not --force,
// not a Store) gets an unnamed .part instead (openAnon): no lock, no second
// look at the final name, which its linkat checks (finishAnon). That saves
// four system calls of the twenty or so a small file costs.
func (f *Fetcher) createPart(ctx context.Context, j *job, size int64) error {
	if err := f.mkdir(j.dir); err != nil {
		return err
	}
	if size >= 0 && size < saveAfter && f.Store == nil && !f.Force && !f.noAnon.Load() && procFDs() {
		f.holdFile()
		p, err := openAnon(j.dir, j.path)
		f.setPart(j, p)
		if err == nil {
			p.digest = j.digest
			return nil
		}
		if !anonUnsupported(err) {
			return f.local(&os.PathError{Op: "open", Path: j.dir, Err: err})
		}
		f.noAnon.Store(true) // this file system has none: named ones from now on
	}
	f.known.named(j.dir)
	f.holdFile()
	p, contended, err := openPart(ctx, j.path, true)
	f.setPart(j, p)
	if err != nil {
		return f.local(err)
	}
	p.digest = j.digest // the 200 that asked for it starts it (and its digest) again
	if f.Store != nil && !contended {
		return nil // nobody finished it since Fetch asked the Store: no second request
	}
	return f.recheck(ctx, j)
}

// recheck looks at the final name again, with the .part lock held.
func (f *Fetcher) recheck(ctx context.Context, j *job) error {
	found, err := f.final(ctx, j.rawURL, j.path)
	switch {
	case err != nil:
		return err
	case found && !f.Force:
		return errFound
	}
	return nil
}

// answer handles the response that ends an attempt's hops: its body goes
// to the .part file, or it says why it cannot.
func (f *Fetcher) answer(ctx context.Context, j *job, resp *http.Response, fl *flight, offset int64, res *Result) error {
	part := j.part
	// end is where this body should end in the file, total the size the
	// server stated for the whole resource; -1: not known.
	end, total := int64(-1), int64(-1)
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		cr, ok := contentRange(resp.Header.Get("Content-Range"))
		if offset == 0 || !ok || cr.start != offset || cr.end < cr.start || (cr.total >= 0 && cr.end >= cr.total) ||
			(resp.ContentLength >= 0 && resp.ContentLength != cr.end-cr.start+1) {
			// Not the range we asked for: start over rather than guess.
			f.drain(resp, fl)
			if part != nil {
				if err := part.reset(""); err != nil {
					return err
				}
			}
			return retryable{err: fmt.Errorf("server sent range %q for a request from byte %d", resp.Header.Get("Content-Range"), offset)}
		}
		if v := validator(resp.Header); v != part.validator {
			// A server that ignores If-Range: these are another version's bytes.
			f.drain(resp, fl)
			if err := part.reset(""); err != nil {
				return err
			}
			return retryable{err: fmt.Errorf("the resource changed (validator %q, not %q): starting again", v, part.validator)}
		}
		end, total = cr.end+1, cr.total
	case resp.StatusCode == http.StatusOK:
		offset = 0
		if part == nil {
			if err := f.createPart(ctx, j, resp.ContentLength); err != nil {
				return err
			}
			part = j.part
		}
		if err := part.reset(validator(resp.Header)); err != nil {
			return err
		}
		end, total = resp.ContentLength, resp.ContentLength
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0:
		f.drain(resp, fl)
		if cr, ok := contentRange(resp.Header.Get("Content-Range")); ok && cr.start < 0 && cr.total == part.size {
			return nil // killed between the last byte and the rename: the part is whole
		}
		if err := part.reset(""); err != nil {
			return err
		}
		return retryable{err: errors.New("HTTP 416: the partial file does not fit the resource any more; starting again")}
	default:
		f.drain(resp, fl)
		err := fmt.Errorf("HTTP %s", resp.Status)
		if resp.StatusCode == 408 || resp.StatusCode == 429 || resp.StatusCode >= 500 {
			return retryable{err: err, after: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
		}
		return err
	}

	n, err := part.copyFrom(f.limit(ctx, fl.reader(resp.Body)), f.Progress)
	res.Bytes += n
	if err != nil {
		var fe fatalError
		if errors.As(err, &fe) {
			return err
		}
		return netError(ctx, fl, err)
	}
	switch {
	case end >= 0 && part.size < end:
		return retryable{err: fmt.Errorf("truncated body: %d of %d bytes", part.size-offset, end-offset)}
	case end >= 0 && part.size > end: // a chunked 206 longer than its range
		if err := part.reset(""); err != nil {
			return err
		}
		return retryable{err: fmt.Errorf("server sent more than the range %q", resp.Header.Get("Content-Range"))}
	case total < 0 || part.size == total:
		return nil // no total stated (a 200 without Content-Length): final at a clean end
	case n == 0:
		return retryable{err: fmt.Errorf("HTTP 206 brought no byte of the %d missing", total-part.size)}
	}
	return errShort // a short 206: its bytes are kept, the rest comes next
}

// errShort ends an attempt whose 206 stopped before the total: it brought
// bytes, so asking again at once for the rest is not a failed attempt.
var errShort = errors.New("the server sent part of the rest")

// drain reads what is left of a small body that is not kept (an error, a
// refused 206) so that its connection can be used again, instead of costing
// a new one (and a TLS handshake). At most maxDrain bytes, within the stall
// timeout (drainTimeout when there is none); a longer body is closed unread.
func (f *Fetcher) drain(resp *http.Response, fl *flight) {
	if resp.ContentLength > maxDrain {
		return
	}
	if !fl.watched() {
		t := time.AfterFunc(drainTimeout, func() { fl.fire(errStalled) })
		defer t.Stop()
	}
	io.Copy(io.Discard, io.LimitReader(fl.reader(resp.Body), maxDrain))
}

// maxDrain is the most drain reads of a body it throws away; drainTimeout
// bounds its time when no stall timeout is set.
const (
	maxDrain     = 64 << 10
	drainTimeout = 2 * time.Second
)

// validator returns the value for If-Range: a strong ETag, else a
// Last-Modified that is a strong validator (RFC 9110 8.8.2.2: at least one
// second older than the response's Date), else "": a weak validator could
// glue two versions of a resource changed within one second, so it means no
// resume.
func validator(h http.Header) string {
	if etag := h.Get("ETag"); etag != "" && !strings.HasPrefix(etag, "W/") {
		return etag
	}
	lm := h.Get("Last-Modified")
	mod, err := http.ParseTime(lm)
	if err != nil {
		return ""
	}
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil || date.Sub(mod) < time.Second {
		return ""
	}
	return lm
}

// byteRange is a parsed Content-Range: bytes start-end/total, with start -1
// for "bytes */total" and total -1 for "bytes start-end/*".
type byteRange struct{ start, end, total int64 }

// contentRange parses "bytes START-END/TOTAL", "bytes START-END/*" and
// "bytes */TOTAL".
func contentRange(s string) (r byteRange, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return r, false
	}
	span, size, found := strings.Cut(rest, "/")
	if !found {
		return r, false
	}
	r.total = -1
	if size != "*" {
		t, err := strconv.ParseInt(size, 10, 64)
		if err != nil || t < 0 {
			return r, false
		}
		r.total = t
	}
	if span == "*" {
		r.start, r.end = -1, -1
		return r, r.total >= 0
	}
	first, last, found := strings.Cut(span, "-")
	a, err1 := strconv.ParseInt(first, 10, 64)
	b, err2 := strconv.ParseInt(last, 10, 64)
	if !found || err1 != nil || err2 != nil || a < 0 {
		return r, false
	}
	r.start, r.end = a, b
	return r, true
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
