package download

// The stall timer: an attempt that receives no byte for a while fails.

import (
	"context"
	"errors"
	"io"
	"time"
)

var errStalled = errors.New("stalled: no data received within the stall timeout")

// stallTimer cancels an attempt when no body byte arrives for a while.
type stallTimer struct {
	d      time.Duration
	t      *time.Timer // nil: no stall timeout
	cancel func()      // cancels the attempt as stalled
}

func newStallTimer(d time.Duration, cancel context.CancelCauseFunc) *stallTimer {
	s := &stallTimer{d: d, cancel: func() { cancel(errStalled) }}
	if d > 0 {
		s.t = time.AfterFunc(d, s.cancel)
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
