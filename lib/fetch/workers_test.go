package fetch

import (
	"sync"
	"testing"
	"time"
)

// waitFor polls cond for up to 10 s (a bound for a hang, not a timing).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 10 s", what)
		}
	}
}

// Lines launched one after another run on the one worker that finished
// the line before.
func TestWorkersReused(t *testing.T) {
	var mu sync.Mutex
	ran := 0
	w := newWorkers(4, func(*ticket) { mu.Lock(); ran++; mu.Unlock() })
	defer w.close()
	for i := range 100 {
		go w.launch(&ticket{})
		waitFor(t, "idle", func() bool { mu.Lock(); defer mu.Unlock(); return ran == i+1 && w.waiting.Load() == 1 })
	}
	if n := w.started.Load(); n != 1 {
		t.Errorf("%d goroutines became workers for 100 lines in a row; want 1", n)
	}
}

// Lines at once get a worker each; once they are done, at most maxIdle
// workers wait, and close ends them.
func TestWorkersIdleBounded(t *testing.T) {
	gate := make(chan struct{})
	var running, finished sync.WaitGroup
	running.Add(10)
	finished.Add(10)
	w := newWorkers(2, func(*ticket) { running.Done(); <-gate; finished.Done() })
	for range 10 {
		go w.launch(&ticket{})
	}
	running.Wait()
	if n := w.started.Load(); n != 10 {
		t.Fatalf("%d workers for 10 lines at once; want 10", n)
	}
	close(gate)
	finished.Wait()
	waitFor(t, "down to 2 idle workers", func() bool { return w.waiting.Load() == 2 })
	time.Sleep(10 * time.Millisecond) // room for a wrong third one to show
	if n := w.waiting.Load(); n != 2 {
		t.Errorf("%d workers wait after the burst; want maxIdle = 2", n)
	}
	w.close()
	waitFor(t, "no worker waiting after close", func() bool { return w.waiting.Load() == 0 })
	done := make(chan struct{})
	w.work = func(*ticket) { close(done) }
	go w.launch(&ticket{}) // after close: still runs
	<-done
}
