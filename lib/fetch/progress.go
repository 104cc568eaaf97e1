package fetch

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// progress shows the run's counters live on stderr (done, failed, in
// flight, bytes, rate), only when stderr is a terminal and -q is not given:
// in a pipeline's log file it would be noise.
type progress struct {
	r     *run
	out   io.Writer
	p     *mpb.Progress
	bar   *mpb.Bar
	begin time.Time
}

func newProgress(r *run, stderr io.Writer, quiet bool) *progress {
	f, ok := stderr.(*os.File)
	if quiet || !ok || !term.IsTerminal(int(f.Fd())) {
		return &progress{}
	}
	return &progress{r: r, out: stderr}
}

func (p *progress) start() {
	if p.out == nil {
		return
	}
	p.begin = time.Now()
	p.p = mpb.New(mpb.WithOutput(p.out), mpb.WithRefreshRate(250*time.Millisecond), mpb.WithWidth(1))
	p.bar = p.p.New(0, mpb.NopStyle(), mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
		return p.line()
	})))
}

func (p *progress) line() string {
	r := p.r
	el := max(time.Since(p.begin).Seconds(), 1e-3)
	b := r.bytes.Load()
	return fmt.Sprintf("ckfetch: %d done, %d already there, %d failed, %d in flight, %s, %s/s",
		r.done.Load(), r.exists.Load(), r.failures.Load(), r.sched.inflight.Load(), size(b), size(int64(float64(b)/el)))
}

func (p *progress) stop() {
	if p.p == nil {
		return
	}
	p.bar.Abort(true) // the summary line replaces it
	p.p.Wait()
}
