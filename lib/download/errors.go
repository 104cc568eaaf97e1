package download

// How an error is classified: fatal (local state), retryable, or final.

import (
	"context"
	"errors"
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
