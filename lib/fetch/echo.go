package fetch

import "github.com/ck-tools/ck/lib/download"

// echoer decides which settled lines are echoed, and when. Results arrive
// in completion order; in input order (the default) a line is echoed once
// it and every line before it are settled, so a checkpoint of the echo is a
// prefix of the work done. The rules, by the first line that is not done:
//
//   - a failure without --failed freezes the echo: later lines still run
//     and their files stay, but none is echoed (counted in notEchoed), so
//     the checkpoint never skips past a line that needs doing again;
//   - a failure with --failed is recorded there and the echo goes on;
//   - an interrupted line, or one whose result stopped the run (halt),
//     stops the echo: earlier lines are still echoed, it and later not.
//
// With --unordered every line is echoed as soon as it is done, and only a
// halt stops the echo. An echoer is used by one goroutine.
type echoer struct {
	unordered bool // --unordered
	keepGoing bool // --failed: a failure does not freeze the echo

	pending map[int64]verdict // settled, waiting for an earlier line
	next    int64             // the oldest line not yet settled in order

	frozen    bool  // a failure without --failed: no more echo
	stopped   bool  // an interrupted or halting line: nothing after it
	notEchoed int64 // lines done while frozen
}

func newEchoer(unordered, keepGoing bool) *echoer {
	return &echoer{unordered: unordered, keepGoing: keepGoing, pending: map[int64]verdict{}}
}

// verdict is what the echo needs of an outcome: a line may wait for an
// earlier one for as long as the window lets it, so it keeps no more.
type verdict struct {
	it     *item
	status download.Status
	halt   bool
}

// add takes the result of one line and returns the lines to echo now, in
// order, and how many lines it settled (each gives back its place in the
// window): in input order one result can settle many waiting ones, or none.
func (e *echoer) add(o *outcome, echo []*item) ([]*item, int) {
	v := verdict{it: o.it, status: o.res.Status, halt: o.halt}
	if e.unordered {
		return e.settle(v, echo), 1
	}
	e.pending[v.it.seq] = v
	n := 0
	for {
		p, ok := e.pending[e.next]
		if !ok {
			return echo, n
		}
		delete(e.pending, e.next)
		e.next++
		n++
		echo = e.settle(p, echo)
	}
}

// settle applies the rules to one line whose turn has come.
func (e *echoer) settle(v verdict, echo []*item) []*item {
	if v.halt {
		e.stopped = true
	}
	switch v.status {
	case download.Done, download.Exists:
		switch {
		case e.stopped:
		case e.frozen:
			e.notEchoed++
		default:
			echo = append(echo, v.it)
		}
	case download.Failed:
		if !e.keepGoing && !e.unordered {
			e.frozen = true
		}
	case download.Canceled:
		if !e.unordered {
			e.stopped = true
		}
	}
	return echo
}
