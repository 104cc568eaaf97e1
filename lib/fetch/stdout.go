package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// echoOut writes the echo to stdout: the lines settled together (one
// result can release many waiting ones) leave in one write, at once. After
// a write fails it writes nothing more.
type echoOut struct {
	w    io.Writer
	buf  []byte
	gone bool  // the reader went away (EPIPE)
	err  error // another write failed
}

// write writes the lines its, each with its newline. It returns errPipe
// when the reader turns out to be gone, and another write's error as
// "write stdout: ..."; each only once, and nil from then on.
func (e *echoOut) write(its []*item) error {
	if len(its) == 0 || e.gone || e.err != nil {
		return nil
	}
	e.buf = e.buf[:0]
	for _, it := range its {
		e.buf = append(append(e.buf, it.line...), '\n')
	}
	_, err := e.w.Write(e.buf)
	switch {
	case err == nil:
		return nil
	case isPipeErr(err):
		e.gone = true
		return errPipe
	}
	e.err = fmt.Errorf("write stdout: %w", err)
	return e.err
}

// isPipeErr reports whether err says the reader of stdout is gone.
func isPipeErr(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrClosed)
}

// watchStdout stops the run soon after the reader of a stdout pipe went
// away, even while nothing is being echoed (a long download in flight): the
// write end of a pipe reports POLLERR once its read end is closed.
func watchStdout(ctx context.Context, stdout io.Writer, cancel context.CancelCauseFunc) {
	f, ok := stdout.(*os.File)
	if !ok {
		return
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		return
	}
	fd := int(f.Fd())
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: 0}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0 {
			cancel(errPipe)
			return
		}
	}
}
