package fetch

import (
	"context"
	"errors"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

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
