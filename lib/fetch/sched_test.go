package fetch

// Unit tests of the scheduler's host rules: warm handoff and host health.
// Internal, because they drive the scheduler itself (its lines are
// launched into a channel and ended by the test), which is what makes each
// start the rule's only choice; the process-level tests are in cmd/.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/download"
)

// schedRun is a scheduler whose launched lines arrive on a channel.
type schedRun struct {
	s        *sched
	launched chan *ticket
	seq      int64
}

func newSchedRun(jobs, perHost int) *schedRun {
	r := &schedRun{s: newSched(jobs, perHost, 0), launched: make(chan *ticket, 1000)}
	r.s.launch = func(t *ticket) { r.launched <- t }
	return r
}

func (r *schedRun) add(t *testing.T, host string) {
	t.Helper()
	it := &item{seq: r.seq, host: host, line: fmt.Sprintf("%s/%d", host, r.seq)}
	r.seq++
	if !r.s.add(it) {
		t.Fatal("the scheduler is stopped")
	}
}

// next returns the next line launched.
func (r *schedRun) next(t *testing.T) *ticket {
	t.Helper()
	select {
	case tk := <-r.launched:
		return tk
	case <-time.After(10 * time.Second): // a failure timeout
		t.Fatal("no line was launched")
		return nil
	}
}

// finish ends tk's download: its request got a response (err nil) or
// failed to connect with err.
func (r *schedRun) finish(tk *ticket, err error) {
	r.s.connResult(tk.it.host, err)
	r.s.done(tk)
}

// TestSchedKeepHostsFit: keepHosts, the hosts in play up to which no warm
// handoff is needed, is as many as the pool can keep every connection of
// while every slot also holds its file open: with one host more, their
// connections and the files exceed download.PoolConns, and the pool would
// close a connection a queued line of its host is about to need.
func TestSchedKeepHostsFit(t *testing.T) {
	for _, jobs := range []int{1, 2, 4, 16, 64, 256} {
		for _, perHost := range []int{1, 2, 4, 8, 300} {
			k, conns := newSched(jobs, perHost, 0).keepHosts, min(perHost, jobs)
			if budget := download.PoolConns(jobs); k*conns+jobs > budget || (k+1)*conns+jobs <= budget {
				t.Errorf("-j %d --per-host %d: keepHosts %d; want the most hosts whose %d connections each, with %d files open, fit in the pool's %d",
					jobs, perHost, k, conns, jobs, budget)
			}
		}
	}
}

// TestSchedWarmHandoff: with -j 1 and more hosts in play than the pool
// keeps all the connections of (keepHosts), a slot freed by a host whose request got a
// response goes to that host's next line, in its input order, and an older
// line of another host is passed over at most maxPasses times in a row.
// With few hosts the plain rule holds: lines start in input order.
func TestSchedWarmHandoff(t *testing.T) {
	keep := newSched(1, 4, 0).keepHosts // -j 1: a connection a host
	if keep < 2 {
		t.Fatalf("the pool keeps the connections of %d hosts at -j 1", keep)
	}
	run := func(t *testing.T, hosts, per int) (order []*ticket, maxPasses int) {
		r := newSchedRun(1, 4)
		for range per {
			for h := range hosts {
				r.add(t, fmt.Sprintf("h%02d", h))
			}
		}
		for range hosts * per {
			tk := r.next(t)
			order = append(order, tk)
			r.finish(tk, nil)
		}
		return order, r.s.maxPasses
	}

	t.Run("few hosts", func(t *testing.T) {
		order, _ := run(t, keep, 3)
		for i, tk := range order {
			if tk.it.seq != int64(i) {
				t.Fatalf("start %d was line %d; want input order with %d hosts", i, tk.it.seq, keep)
			}
		}
	})

	for _, tc := range []struct{ hosts, per int }{{40, 5}, {20, 40}} {
		t.Run(fmt.Sprintf("%d hosts × %d lines", tc.hosts, tc.per), func(t *testing.T) {
			hosts, per := tc.hosts, tc.per
			order, maxPasses := run(t, hosts, per)
			last := map[string]int64{}
			started := map[int64]bool{}
			warm, passed := 0, 0
			for i, tk := range order {
				h := tk.it.host
				if prev, ok := last[h]; ok && tk.it.seq < prev {
					t.Fatalf("start %d: line %d of %s after its line %d", i, tk.it.seq, h, prev)
				}
				last[h] = tk.it.seq
				started[tk.it.seq] = true
				oldest := int64(0)
				for started[oldest] {
					oldest++
				}
				if i > 0 && h == order[i-1].it.host {
					warm++
				}
				// An older line still waiting: this start passed over it.
				if oldest < tk.it.seq {
					passed++
					if passed > maxPasses {
						t.Fatalf("start %d (line %d): the oldest line %d was passed over %d times in a row; want at most %d", i, tk.it.seq, oldest, passed, maxPasses)
					}
				} else {
					passed = 0
				}
			}
			// With runs of per - 1 passes within the bound, each host's lines
			// run back to back while more than keep hosts are in play;
			// the last ones go by the plain rule.
			if per-1 > maxPasses {
				return
			}
			if want := (hosts - keep - 1) * (per - 1); warm < want {
				t.Errorf("%d of %d starts followed a line of the same host; want at least %d", warm, len(order), want)
			}
		})
	}
}

// TestSchedHostHealth: after --host-failures connection failures in a
// row, the host's queued new lines, and new lines added later, start at
// once (no per-host limit holds them) and fail their first attempt with
// "host unreachable"; lines of other hosts are not touched; a response
// resets the count.
func TestSchedHostHealth(t *testing.T) {
	refused := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	r := newSchedRun(1, 1)
	r.s.setHealth(3)
	for range 10 {
		r.add(t, "dead")
	}
	r.add(t, "live")
	// Three lines fail to connect, one at a time.
	for i := range 3 {
		tk := r.next(t)
		if tk.it.host != "dead" || tk.it.seq != int64(i) || tk.dead != nil {
			t.Fatalf("launch %d: line %d of %s (dead %v); want line %d of dead, not doomed", i, tk.it.seq, tk.it.host, tk.dead, i)
		}
		r.finish(tk, refused)
	}
	r.add(t, "dead") // arrives after the host was given up
	var doomed []int64
	for range 9 {
		tk := r.next(t)
		if tk.it.host == "live" {
			r.finish(tk, nil)
			continue
		}
		_, err := r.s.acquire(withTicket(context.Background(), tk), tk.it.host)
		if err == nil || !strings.Contains(err.Error(), "host unreachable: "+refused.Error()) {
			t.Fatalf("line %d: acquire gave %v; want host unreachable: %v", tk.it.seq, err, refused)
		}
		doomed = append(doomed, tk.it.seq)
		r.s.done(tk)
	}
	if want := []int64{3, 4, 5, 6, 7, 8, 9, 11}; fmt.Sprint(doomed) != fmt.Sprint(want) {
		t.Errorf("lines failed as unreachable: %v; want %v", doomed, want)
	}
	// The live line ran.
	select {
	case tk := <-r.launched:
		t.Fatalf("line %d of %s launched; want none left", tk.it.seq, tk.it.host)
	default:
	}

	// A response (a running line's retry, say) brings the host back.
	r.s.connResult("dead", nil)
	r.add(t, "dead")
	tk := r.next(t)
	if tk.dead != nil {
		t.Errorf("after a response, a new line of the host is doomed: %v", tk.dead)
	}
	r.finish(tk, nil)
}
