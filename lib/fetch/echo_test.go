package fetch

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ck-tools/ck/lib/download"
)

// res is one line's result, in the shorthand of the tests below: d done,
// e exists, f failed, c canceled, h done but its result halted the run
// (a failure to record it, say).
func res(seq int64, kind byte) *outcome {
	o := &outcome{it: &item{seq: seq, line: fmt.Sprint(seq)}}
	switch kind {
	case 'd':
		o.res.Status = download.Done
	case 'e':
		o.res.Status = download.Exists
	case 'f':
		o.res.Status = download.Failed
	case 'c':
		o.res.Status = download.Canceled
	case 'h':
		o.res.Status, o.halt = download.Done, true
	}
	return o
}

// feed gives e the results of kinds (line i has kinds[i]) in the order
// given, and returns the lines echoed, in echo order, and the window places
// given back.
func feed(e *echoer, kinds string, order []int) (echoed []int64, settled int) {
	var out []*item
	for _, i := range order {
		var n int
		out, n = e.add(res(int64(i), kinds[i]), out[:0])
		settled += n
		for _, it := range out {
			echoed = append(echoed, it.seq)
		}
	}
	return echoed, settled
}

func inOrder(n int) []int {
	o := make([]int, n)
	for i := range o {
		o[i] = i
	}
	return o
}

func TestEchoer(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		unordered, keepGoing bool
		kinds                string
		order                []int // nil: input order
		want                 []int64
		notEchoed            int64
	}{
		{name: "all done, in order", kinds: "ddedd", want: []int64{0, 1, 2, 3, 4}},
		{name: "completion order is put back in input order", kinds: "dddd", order: []int{3, 1, 0, 2}, want: []int64{0, 1, 2, 3}},
		{name: "a failure freezes the echo", kinds: "ddfdd", want: []int64{0, 1}, notEchoed: 2},
		{name: "a failure that completes first still lets earlier lines out", kinds: "ddfd", order: []int{2, 3, 1, 0}, want: []int64{0, 1}, notEchoed: 1},
		{name: "with --failed the echo goes past a failure", keepGoing: true, kinds: "dfdfd", want: []int64{0, 2, 4}},
		{name: "an interrupted line stops the echo", kinds: "ddcdd", want: []int64{0, 1}},
		{name: "interrupted stops even with --failed", keepGoing: true, kinds: "dfcd", want: []int64{0}},
		{name: "a halting line is not echoed, nor later ones", keepGoing: true, kinds: "ddhdd", want: []int64{0, 1}},
		{name: "a halt that comes first: earlier lines still echoed", kinds: "dddh", order: []int{3, 0, 1, 2}, want: []int64{0, 1, 2}},
		{name: "unordered: completion order", unordered: true, kinds: "dddd", order: []int{2, 0, 3, 1}, want: []int64{2, 0, 3, 1}},
		{name: "unordered: a failure does not freeze", unordered: true, kinds: "dfdd", order: []int{1, 3, 0, 2}, want: []int64{3, 0, 2}},
		{name: "unordered: an interrupted line does not stop", unordered: true, kinds: "dcd", order: []int{1, 2, 0}, want: []int64{2, 0}},
		{name: "unordered: a halt stops, an interruption after it does not undo that", unordered: true, kinds: "dhcd", order: []int{0, 1, 2, 3}, want: []int64{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			order := tc.order
			if order == nil {
				order = inOrder(len(tc.kinds))
			}
			e := newEchoer(tc.unordered, tc.keepGoing)
			echoed, settled := feed(e, tc.kinds, order)
			if !slices.Equal(echoed, tc.want) {
				t.Errorf("echoed %v, want %v", echoed, tc.want)
			}
			if settled != len(tc.kinds) {
				t.Errorf("%d lines settled, want all %d", settled, len(tc.kinds))
			}
			if e.notEchoed != tc.notEchoed {
				t.Errorf("notEchoed %d, want %d", e.notEchoed, tc.notEchoed)
			}
			if len(e.pending) != 0 {
				t.Errorf("%d results still pending", len(e.pending))
			}
		})
	}
}

// TestEchoerWindow: in input order a line settles, and gives back its place
// in the window, only once every earlier line has: so the window bounds the
// lines between the oldest unsettled one and the newest.
func TestEchoerWindow(t *testing.T) {
	e := newEchoer(false, true)
	var out []*item
	for i := int64(5); i >= 1; i-- {
		var n int
		if out, n = e.add(res(i, 'd'), out[:0]); n != 0 || len(out) != 0 {
			t.Fatalf("line %d settled %d and echoed %d while line 0 is still running", i, n, len(out))
		}
	}
	if len(e.pending) != 5 {
		t.Fatalf("%d pending, want 5", len(e.pending))
	}
	out, n := e.add(res(0, 'd'), out[:0])
	if n != 6 || len(out) != 6 {
		t.Fatalf("line 0 settled %d and echoed %d, want 6 and 6", n, len(out))
	}
}

// TestEchoerRandom compares the echoer, fed in random completion orders,
// with the rule applied to the lines in input order: the echo is the done
// lines before the first stop (and, without --failed, before the first
// failure), whatever the order of completion.
func TestEchoerRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 2000 {
		n := 1 + rng.IntN(12)
		kinds := make([]byte, n)
		for i := range kinds {
			kinds[i] = "ddddefch"[rng.IntN(8)]
		}
		keepGoing := rng.IntN(2) == 0
		var want []int64
		var notEchoed int64
		frozen := false
	model:
		for i, k := range kinds {
			switch k {
			case 'd', 'e':
				if frozen {
					notEchoed++
				} else {
					want = append(want, int64(i))
				}
			case 'f':
				frozen = frozen || !keepGoing
			case 'c', 'h':
				break model
			}
		}
		order := rng.Perm(n)
		e := newEchoer(false, keepGoing)
		echoed, settled := feed(e, string(kinds), order)
		if !slices.Equal(echoed, want) || settled != n || e.notEchoed != notEchoed {
			t.Fatalf("round %d: kinds %s keepGoing %v order %v: echoed %v (want %v), settled %d of %d, notEchoed %d (want %d)",
				round, kinds, keepGoing, order, echoed, want, settled, n, e.notEchoed, notEchoed)
		}
	}
}
