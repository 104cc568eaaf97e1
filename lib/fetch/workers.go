package fetch

import "sync/atomic"

// workers runs the lines' downloads on goroutines that outlive one line. A
// download's goroutine grows its stack to tens of KiB inside net/http and
// the file calls; a goroutine per line would grow it (copying it each time)
// again for every file, which cost about a tenth of ckfetch's CPU on small
// files. A worker that finished a line takes the next one launched; at most
// maxIdle wait for one, the others end, so idle stacks stay bounded by -j
// however many lines a burst of backoffs had in flight.
type workers struct {
	work    func(*ticket)
	idle    chan *ticket  // unbuffered: a send succeeds only to a waiting worker
	stop    chan struct{} // closed when the run ends: waiting workers end
	maxIdle int32
	waiting atomic.Int32 // workers waiting for a line
	started atomic.Int64 // goroutines that became workers, for tests
}

func newWorkers(maxIdle int, work func(*ticket)) *workers {
	return &workers{work: work, idle: make(chan *ticket), stop: make(chan struct{}), maxIdle: int32(maxIdle)}
}

// offer hands t to a waiting worker, and reports whether one took it; it
// does not wait. The scheduler calls it with its lock held, so that a line
// that a waiting worker takes costs no goroutine of its own.
func (w *workers) offer(t *ticket) bool {
	select {
	case w.idle <- t:
		return true
	default:
		return false
	}
}

// launch runs t's download: on a waiting worker if there is one, else on
// the calling goroutine, which then stays as a worker. The scheduler calls
// it on a goroutine of its own when offer found no worker waiting.
func (w *workers) launch(t *ticket) {
	if w.offer(t) {
		return
	}
	w.started.Add(1)
	for t != nil {
		w.work(t)
		t = w.next()
	}
}

// next waits for the next line, nil if this worker is to end.
func (w *workers) next() *ticket {
	if w.waiting.Add(1) > w.maxIdle {
		w.waiting.Add(-1)
		return nil
	}
	defer w.waiting.Add(-1)
	select {
	case t := <-w.idle:
		return t
	case <-w.stop:
		return nil
	}
}

// close ends the waiting workers; a line launched after it still runs.
func (w *workers) close() { close(w.stop) }
