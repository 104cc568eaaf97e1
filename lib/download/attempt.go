package download

// One request and what its response means for the .part file.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

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
