package fetchtest

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// options are the query options of /f/NAME (see the package comment).
type options struct {
	size       int64
	fail       int
	status     int
	retryAfter string
	cutAt      int64 // reset or truncate position, -1 for none
	cuts       int
	rst        bool // cut with a reset rather than a clean close
	stallAt    int64
	stalls     int
	stallDur   time.Duration
	delay      time.Duration
	delays     int
	slow       int64
	noRange    bool
	noLength   bool
	gzip       bool
	changing   bool
	noETag     bool
	noLastMod  bool
	redirect   int
	short206   int64 // a ranged answer sends at most this many bytes, 0: no limit
	ignoreIf   bool  // ignoreifrange=1
	weakMod    bool  // weaklastmod=1
}

func parseOptions(q url.Values) (options, error) {
	o := options{size: DefaultSize, status: http.StatusServiceUnavailable, cutAt: -1, cuts: 1, stallAt: -1, stalls: 1, delays: 1}
	var err error
	num := func(k string, min int64) int64 {
		if err != nil {
			return 0
		}
		v, e := strconv.ParseInt(q.Get(k), 10, 64)
		if e != nil || v < min {
			err = fmt.Errorf("option %s=%q: want an integer >= %d", k, q.Get(k), min)
		}
		return v
	}
	dur := func(k string) time.Duration {
		if err != nil {
			return 0
		}
		d, e := time.ParseDuration(q.Get(k))
		if e != nil || d < 0 {
			err = fmt.Errorf("option %s=%q: want a duration such as 2s", k, q.Get(k))
		}
		return d
	}
	flag := func(k string) bool {
		if err != nil {
			return false
		}
		switch q.Get(k) {
		case "1", "true":
			return true
		case "0", "false":
			return false
		}
		err = fmt.Errorf("option %s=%q: want 1 or 0", k, q.Get(k))
		return false
	}
	for k := range q {
		switch k {
		case "size":
			o.size = num(k, 0)
		case "fail":
			o.fail = int(num(k, 0))
		case "status":
			o.status = int(num(k, 200))
			if o.status > 599 {
				err = fmt.Errorf("option status=%d: want 200 to 599", o.status)
			}
		case "retry-after":
			o.retryAfter = q.Get(k)
		case "reset", "truncate":
			if o.cutAt >= 0 {
				err = errors.New("options reset and truncate exclude each other")
			}
			o.cutAt = num(k, 0)
			o.rst = k == "reset"
		case "resets", "truncates":
			o.cuts = int(num(k, 0))
		case "stall":
			o.stallAt = num(k, 0)
		case "stalls":
			o.stalls = int(num(k, 0))
		case "stalldur":
			o.stallDur = dur(k)
		case "delay":
			o.delay = dur(k)
		case "delays":
			o.delays = int(num(k, 0))
		case "slow":
			o.slow = num(k, 1)
		case "norange":
			o.noRange = flag(k)
		case "nolength":
			o.noLength = flag(k)
		case "gzip":
			o.gzip = flag(k)
		case "noetag":
			o.noETag = flag(k)
		case "nolastmod":
			o.noLastMod = flag(k)
		case "etag":
			if q.Get(k) != "changing" {
				err = fmt.Errorf("option etag=%q: only etag=changing exists", q.Get(k))
			}
			o.changing = true
		case "redirect":
			o.redirect = int(num(k, 0))
		case "short206":
			o.short206 = num(k, 1)
		case "ignoreifrange":
			o.ignoreIf = flag(k)
		case "weaklastmod":
			o.weakMod = flag(k)
		case "tag":
		default:
			err = fmt.Errorf("unknown option %q (see the fetchtest package comment)", k)
		}
		if err != nil {
			return o, err
		}
	}
	return o, nil
}

// ServeHTTP answers one request as the package comment says.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/_stats":
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false) // keep & in URLs greppable
		enc.Encode(s.Stats(r.URL.Query().Get("log") == "1"))
		return
	case "/_reset":
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	e := s.begin(r)
	defer s.end(e)
	rw := &recorder{ResponseWriter: w, s: s, e: e}
	switch {
	case strings.HasPrefix(r.URL.Path, "/status/"):
		s.serveStatus(rw, r)
	case r.URL.Path == "/redirect":
		serveRedirect(rw, r)
	case strings.HasPrefix(r.URL.Path, "/f/") && len(r.URL.Path) > len("/f/"):
		s.serveFile(rw, r, e)
	default:
		http.NotFound(rw, r)
	}
}

// recorder notes the status in the log.
type recorder struct {
	http.ResponseWriter
	s     *Server
	e     *entry
	wrote bool
}

func (w *recorder) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		w.s.setStatus(w.e, code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
	if err != nil || code < 200 || code > 599 {
		http.Error(w, "fetchtest: /status/CODE wants a code from 200 to 599", http.StatusBadRequest)
		return
	}
	if v := r.URL.Query().Get("retry-after"); v != "" {
		w.Header().Set("Retry-After", v)
	}
	if v, ok := r.URL.Query()["location"]; ok {
		w.Header()["Location"] = v[:1] // as given, even malformed
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, "%d %s\n", code, http.StatusText(code))
}

// serveRedirect answers /redirect?to=URL[&status=CODE].
func serveRedirect(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	code := http.StatusFound
	if v := q.Get("status"); v != "" {
		code, _ = strconv.Atoi(v)
	}
	switch {
	case q.Get("to") == "":
		http.Error(w, "fetchtest: /redirect wants ?to=URL", http.StatusBadRequest)
	case code != 301 && code != 302 && code != 303 && code != 307 && code != 308:
		http.Error(w, "fetchtest: /redirect wants status=301, 302, 303, 307 or 308", http.StatusBadRequest)
	default:
		w.Header().Set("Location", q.Get("to"))
		w.WriteHeader(code)
	}
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, e *entry) {
	ctx := r.Context()
	o, err := parseOptions(r.URL.Query())
	if err != nil {
		http.Error(w, "fetchtest: "+err.Error(), http.StatusBadRequest)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "fetchtest: method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if o.delay > 0 && e.n <= o.delays {
		if wait(ctx, o.delay) != nil {
			return
		}
	}
	if o.redirect > 0 {
		w.Header().Set("Location", redirectTarget(r.URL, o.redirect-1))
		w.WriteHeader(http.StatusFound)
		return
	}
	if e.n <= o.fail {
		if o.retryAfter != "" {
			w.Header().Set("Retry-After", o.retryAfter)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(o.status)
		fmt.Fprintf(w, "fetchtest: request %d of %d that fail\n", e.n, o.fail)
		return
	}

	name := strings.TrimPrefix(r.URL.Path, "/f/")
	version := 0
	if o.changing {
		version = e.n
	}
	zipped := o.gzip && acceptsGzip(r)
	tag := etag(name, version, o.size, zipped)
	mod := modTime(version).Format(http.TimeFormat)
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	if o.weakMod {
		// Modified in the second of the answer: a weak validator (RFC 9110
		// 8.8.2.2). Date is the same fixed time, so the answer does not depend
		// on the clock.
		o.noETag = true
		h.Set("Date", mod)
	}
	if !o.noETag {
		h.Set("ETag", tag)
	}
	if !o.noLastMod {
		h.Set("Last-Modified", mod)
	}
	if zipped {
		h.Set("Content-Encoding", "gzip")
		h.Set("Vary", "Accept-Encoding")
	}
	rangeOK := !o.noRange && !zipped
	if rangeOK {
		h.Set("Accept-Ranges", "bytes")
	}

	start, end := int64(0), o.size // the body is [start, end)
	status := http.StatusOK
	if rg := r.Header.Get("Range"); rg != "" && rangeOK && (o.ignoreIf || ifRangeMatches(r.Header.Get("If-Range"), tag, mod, o)) {
		a, b, ok, satisfiable := parseRange(rg, o.size)
		switch {
		case ok && !satisfiable:
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", o.size))
			h.Del("Content-Type")
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		case ok:
			if o.short206 > 0 {
				b = min(b, a+o.short206)
			}
			start, end, status = a, b, http.StatusPartialContent
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b-1, o.size))
		}
	}
	if !o.noLength && !zipped {
		h.Set("Content-Length", strconv.FormatInt(end-start, 10))
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	rc := http.NewResponseController(w)
	if o.noLength || zipped {
		rc.Flush() // headers out now, so net/http cannot add a length
	}

	fw := &faultWriter{w: w, rc: rc, ctx: ctx, s: s, e: e, cutAt: -1, stallAt: -1, slow: o.slow, begun: time.Now()}
	if o.cutAt >= 0 && e.n <= o.cuts {
		fw.cutAt, fw.rst = o.cutAt, o.rst
	}
	if o.stallAt >= 0 && e.n <= o.stalls {
		fw.stallAt, fw.stallDur = o.stallAt, o.stallDur
	}
	var dst io.Writer = fw
	var zw *gzip.Writer
	if zipped {
		zw = gzip.NewWriter(fw)
		dst = zw
	}
	body := io.NewSectionReader(newContent(name, version), start, end-start)
	buf := make([]byte, 32<<10)
	if _, err := io.CopyBuffer(dst, onlyReader{body}, buf); err != nil {
		return
	}
	if zw != nil {
		zw.Close()
	}
}

// onlyReader hides WriterTo/ReaderFrom so CopyBuffer uses the buffer.
type onlyReader struct{ io.Reader }

func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(coding), "gzip") && strings.ReplaceAll(params, " ", "") != "q=0" {
				return true
			}
		}
	}
	return false
}

// ifRangeMatches says whether a Range may be honoured: no If-Range, or an
// If-Range equal to the current strong ETag or Last-Modified date.
func ifRangeMatches(ifRange, tag, mod string, o options) bool {
	switch {
	case ifRange == "":
		return true
	case strings.HasPrefix(ifRange, `"`):
		return !o.noETag && ifRange == tag
	case strings.HasPrefix(ifRange, "W/"):
		return false // weak validators never match
	default:
		return !o.noLastMod && ifRange == mod
	}
}

// parseRange reads a single "bytes=" range. ok is false when the header is
// to be ignored (bad syntax, several ranges, another unit); satisfiable is
// false when the range lies past the end. The range is [start, end).
func parseRange(h string, size int64) (start, end int64, ok, satisfiable bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	if first == "" { // suffix: the last N bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false, false
		}
		if n == 0 || size == 0 {
			return 0, 0, true, false
		}
		return max(size-n, 0), size, true, true
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 {
		return 0, 0, false, false
	}
	b := size - 1
	if last != "" {
		if b, err = strconv.ParseInt(last, 10, 64); err != nil || b < a {
			return 0, 0, false, false
		}
		b = min(b, size-1)
	}
	if a >= size {
		return 0, 0, true, false
	}
	return a, b + 1, true, true
}

// redirectTarget is u with its redirect option set to n, or dropped when n
// is 0, the other options left as they were written.
func redirectTarget(u *url.URL, n int) string {
	var parts []string
	for _, p := range strings.Split(u.RawQuery, "&") {
		k, _, _ := strings.Cut(p, "=")
		if k == "redirect" {
			if n == 0 {
				continue
			}
			p = "redirect=" + strconv.Itoa(n)
		}
		parts = append(parts, p)
	}
	t := url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: strings.Join(parts, "&")}
	return t.RequestURI()
}

// errCut ends a body cut short on purpose.
var errCut = errors.New("fetchtest: connection cut on purpose")

// faultWriter sends the body, counts it, and applies the byte-position
// faults and the throttle.
type faultWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	ctx context.Context
	s   *Server
	e   *entry

	sent     int64
	cutAt    int64 // -1: none
	rst      bool
	stallAt  int64 // -1: none
	stallDur time.Duration
	slow     int64 // bytes per second, 0: no limit
	begun    time.Time
}

func (f *faultWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if f.sent == f.stallAt {
			f.stallAt = -1
			f.rc.Flush()
			var err error
			if f.stallDur > 0 {
				err = wait(f.ctx, f.stallDur)
			} else {
				<-f.ctx.Done()
				err = f.ctx.Err()
			}
			if err != nil {
				return written, err
			}
		}
		if f.sent == f.cutAt {
			return written, f.cut()
		}
		chunk := p
		for _, at := range []int64{f.stallAt, f.cutAt} {
			if at > f.sent && int64(len(chunk)) > at-f.sent {
				chunk = chunk[:at-f.sent]
			}
		}
		if f.slow > 0 {
			step := min(max(f.slow/20, 1), 32<<10)
			if int64(len(chunk)) > step {
				chunk = chunk[:step]
			}
		}
		n, err := f.w.Write(chunk)
		f.sent += int64(n)
		written += n
		p = p[n:]
		f.s.addBytes(f.e, int64(n))
		if err != nil {
			return written, err
		}
		if f.slow > 0 {
			f.rc.Flush()
			due := f.begun.Add(time.Duration(float64(f.sent) / float64(f.slow) * float64(time.Second)))
			if err := wait(f.ctx, time.Until(due)); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// cut sends what was written and ends the connection: with an RST when
// f.rst (SO_LINGER 0), with a clean FIN otherwise.
func (f *faultWriter) cut() error {
	f.rc.Flush()
	conn, bufrw, err := f.rc.Hijack()
	if err != nil {
		return fmt.Errorf("fetchtest: hijack: %w", err)
	}
	bufrw.Flush()
	if tc, ok := conn.(*net.TCPConn); ok && f.rst {
		tc.SetLinger(0)
	}
	conn.Close()
	return errCut
}

// wait sleeps for d or until ctx ends, whichever is first.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
