package download

// How an error is classified: fatal (local state), retryable, or final.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

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

// netError classifies a transport error: a network failure is worth a
// retry, unless the run itself was interrupted or no retry can fix it (see
// unfixable).
func netError(ctx context.Context, fl *flight, err error) error {
	cause := fl.err()
	if errors.Is(cause, errStalled) {
		return retryable{err: cause}
	}
	if cause != nil || ctx.Err() != nil {
		return context.Canceled
	}
	if outOfDescriptors(err) {
		return fatal(fmt.Errorf("%w (%s)", err, descriptorsHint))
	}
	if unfixable(err) {
		return err
	}
	return retryable{err: err}
}

// outOfDescriptors reports whether err says this process (EMFILE) or the
// system (ENFILE) has no descriptor left: not the host's failure, and not
// one a retry of this line would fix while the others hold theirs, so the
// run stops (nothing is lost: the lines not done are not echoed).
func outOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

const descriptorsHint = "out of file descriptors: raise ulimit -n (ckfetch needs about 2 × -j + 40) or lower -j"

// unfixable reports whether a transport error would come back the same on
// every retry, so the line fails at once instead of after all its retries:
// a certificate that does not verify, a plain HTTP answer to an https
// request, an unsupported scheme (a redirect to ftp://, say), or a redirect
// whose Location is not a URL or names no host.
func unfixable(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid):
		return true
	case errors.Is(err, http.ErrSchemeMismatch), errors.As(err, &record):
		return true
	}
	// net/http has no error values for these, only their text.
	msg := err.Error()
	return strings.Contains(msg, "unsupported protocol scheme") ||
		strings.Contains(msg, "no Host in request URL")
}

// ConnFailure reports whether err, the error of a request that got no
// response, says the host gave no usable connection: its name did not
// resolve (DNS), the connect failed (refused, unreachable, timed out), the
// TLS handshake failed or timed out, or the connection was closed or reset
// before any answer (net/http retries a reused connection that the server
// had closed, so this is a new one). A timeout waiting for the answer is
// not one: the host took the request. These are what host health counts.
func ConnFailure(err error) bool {
	var (
		dns    *net.DNSError
		op     *net.OpError
		record tls.RecordHeaderError
		alert  tls.AlertError
		verify *tls.CertificateVerificationError
	)
	switch {
	case outOfDescriptors(err): // ours, not the host's
		return false
	case errors.As(err, &dns), errors.As(err, &record), errors.As(err, &alert), errors.As(err, &verify):
		return true
	case errors.As(err, &op) && op.Op == "dial": // the proxy's, too
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	// net/http's handshake timeout and its "server closed idle connection"
	// (a new connection closed before the request was written) have
	// unexported values.
	msg := err.Error()
	return strings.Contains(msg, "TLS handshake timeout") || strings.Contains(msg, "server closed idle connection")
}

// doError is the error of Client.Do for req, the request of redirect hop
// number hop (0: the line's own URL), for netError, without the `Get "URL": `
// that net/http puts before it (*url.Error): a line's failure is reported
// after its URL, which must not come twice. A later hop's URL is named
// ("after a redirect to URL", its password masked as net/http does).
func doError(err error, req *http.Request, hop int) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if hop > 0 {
		return fmt.Errorf("after a redirect to %s: %w", stripPassword(req.URL), err)
	}
	return err
}

// stripPassword writes u as net/http does in its errors, the password
// masked, so that the URLs compare.
func stripPassword(u *url.URL) string {
	if _, ok := u.User.Password(); ok {
		return strings.Replace(u.String(), u.User.String()+"@", u.User.Username()+":***@", 1)
	}
	return u.String()
}
