package download

// One request and what its response means for the .part file.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// attempt makes one request and appends its body to the part file. A nil
// error means the part file now holds the whole resource; then the release
// of BeforeAttempt's slot is left in *held, for the caller to call once the
// file is final.
func (f *Fetcher) attempt(ctx context.Context, part *partFile, rawURL, host string, res *Result, held *func()) (err error) {
	if f.Pacer != nil {
		if err := f.Pacer.Wait(ctx, host); err != nil {
			return err
		}
	}
	if f.BeforeAttempt != nil {
		release, herr := f.BeforeAttempt(ctx)
		if herr != nil {
			return herr
		}
		defer func() { // err is the result: a slot of a failed attempt goes back now
			if err == nil {
				*held = release
			} else {
				release()
			}
		}()
	}
	if f.Pacer != nil {
		if err := f.Pacer.Start(ctx, host); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The request carries f for the client's CheckRedirect, which sets the
	// headers of each redirect hop (setHeaders).
	req, err := http.NewRequestWithContext(context.WithValue(ctx, fetcherKey{}, f), http.MethodGet, rawURL, nil)
	if err != nil {
		return fmt.Errorf("invalid URL: %w", err)
	}
	f.setHeaders(req, req.URL)
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
		return netError(ctx, doError(err, req))
	}
	defer resp.Body.Close()
	res.HTTPStatus = resp.StatusCode
	res.FinalURL = resp.Request.URL.String()

	// end is where this body should end in the file, total the size the
	// server stated for the whole resource; -1: not known.
	end, total := int64(-1), int64(-1)
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		cr, ok := contentRange(resp.Header.Get("Content-Range"))
		if offset == 0 || !ok || cr.start != offset || cr.end < cr.start || (cr.total >= 0 && cr.end >= cr.total) ||
			(resp.ContentLength >= 0 && resp.ContentLength != cr.end-cr.start+1) {
			// Not the range we asked for: start over rather than guess.
			f.drain(resp, stall)
			if err := part.reset(""); err != nil {
				return err
			}
			return retryable{err: fmt.Errorf("server sent range %q for a request from byte %d", resp.Header.Get("Content-Range"), offset)}
		}
		if v := validator(resp.Header); v != part.validator {
			// A server that ignores If-Range: these are another version's bytes.
			f.drain(resp, stall)
			if err := part.reset(""); err != nil {
				return err
			}
			return retryable{err: fmt.Errorf("the resource changed (validator %q, not %q): starting again", v, part.validator)}
		}
		end, total = cr.end+1, cr.total
	case resp.StatusCode == http.StatusOK:
		offset = 0
		if err := part.reset(validator(resp.Header)); err != nil {
			return err
		}
		end, total = resp.ContentLength, resp.ContentLength
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0:
		f.drain(resp, stall)
		if cr, ok := contentRange(resp.Header.Get("Content-Range")); ok && cr.start < 0 && cr.total == part.size {
			return nil // killed between the last byte and the rename: the part is whole
		}
		if err := part.reset(""); err != nil {
			return err
		}
		return retryable{err: errors.New("HTTP 416: the partial file does not fit the resource any more; starting again")}
	default:
		f.drain(resp, stall)
		err := fmt.Errorf("HTTP %s", resp.Status)
		if resp.StatusCode == 408 || resp.StatusCode == 429 || resp.StatusCode >= 500 {
			return retryable{err: err, after: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
		}
		return err
	}

	n, err := part.copyFrom(f.limit(ctx, stall.reader(resp.Body)), f.Progress)
	res.Bytes += n
	if err != nil {
		var fe fatalError
		if errors.As(err, &fe) {
			return err
		}
		return netError(ctx, err)
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
func (f *Fetcher) drain(resp *http.Response, stall *stallTimer) {
	if resp.ContentLength > maxDrain {
		return
	}
	if stall.t == nil {
		t := time.AfterFunc(drainTimeout, stall.cancel)
		defer t.Stop()
	}
	io.Copy(io.Discard, io.LimitReader(stall.reader(resp.Body), maxDrain))
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
