// Package keyset holds a set of keys as fixed-size 128-bit digests, for
// ckskip --set: memory depends on the number of keys, not on their length.
//
// A digest is xxh3's 128-bit hash of the key. Two distinct keys share a
// digest with probability about 2^-128 per pair, so across a billion input
// lines checked against a billion keys the chance of one wrong answer stays
// near 1e-21, far below the 1e-12 the contract asks for. The table is open
// addressing with linear probing, kept at most 70% full: about 23 bytes per
// key when sized in advance with New, and never more than 32 bytes per key
// once it holds as many keys as it was sized for.
//
// Lookups go to random slots of a table larger than the CPU caches, so each
// one waits for memory. HasEach and AddEach hide most of that wait by
// starting the loads of a batch of keys before using any of them, and a
// large table is mapped with huge pages (see makeSlots) so that the
// lookups do not also miss the TLB.
package keyset

import (
	"math/bits"
	"sync/atomic"
	"unsafe"

	"github.com/zeebo/xxh3"
)

// maxLoad is the fill ratio (in percent) above which the table grows. At 70%
// a table sized for n keys uses 16/0.7 ≈ 23 bytes per key, and a lookup of an
// absent key probes about 6 neighbouring slots, usually in one or two cache
// lines.
const maxLoad = 70

// batch is how many keys HasEach and AddEach keep in flight at once.
const batch = 32

// digest is a key's 128-bit hash. The zero digest marks an empty slot; a key
// whose hash is zero is stored as {0, 1}.
type digest struct{ hi, lo uint64 }

// Set is a set of keys, held as digests. The zero Set is empty and ready to
// use. A Set must not be copied, and its methods must not be called
// concurrently.
type Set struct {
	slots []digest
	mem   []byte // the mapping that holds slots, if not the Go heap
	n     int    // digests stored
	limit int    // grow when n reaches this; always below len(slots)
}

// New returns a set with room for n keys before it has to grow, so a caller
// that counts its keys first allocates the table once. Call Release when
// done with a large set.
func New(n int) *Set {
	s := &Set{}
	s.alloc(n)
	return s
}

// alloc makes an empty table with room for n keys at maxLoad.
func (s *Set) alloc(n int) {
	size := max(n*100/maxLoad+1, 8)
	s.slots, s.mem = makeSlots(size)
	s.n = 0
	s.limit = max(size*maxLoad/100, n)
}

// Release frees the table now. A large table lives outside the Go heap
// (makeSlots), so the garbage collector does not free it: a long-running
// caller must call Release. The set is empty and usable afterwards.
func (s *Set) Release() {
	freeSlots(s.mem)
	*s = Set{}
}

func sum(key []byte) digest {
	h := xxh3.Hash128(key)
	d := digest{h.Hi, h.Lo}
	if d == (digest{}) {
		d.lo = 1
	}
	return d
}

// home returns the slot where the probe for d starts: hi scaled to the table
// size (multiply-shift, no power-of-two size needed).
func (s *Set) home(d digest) int {
	i, _ := bits.Mul64(d.hi, uint64(len(s.slots)))
	return int(i)
}

// Add puts key in the set.
func (s *Set) Add(key []byte) {
	if s.n >= s.limit {
		s.grow()
	}
	d := sum(key)
	s.insertAt(d, s.home(d))
}

// insertAt puts d in the table, probing from slot i. The table always has an
// empty slot (limit < len(slots)), so the probe ends.
func (s *Set) insertAt(d digest, i int) {
	slots := s.slots
	for {
		switch slots[i] {
		case d:
			return
		case digest{}:
			slots[i] = d
			s.n++
			return
		}
		if i++; i == len(slots) {
			i = 0
		}
	}
}

// grow doubles the table.
func (s *Set) grow() {
	old, oldMem := s.slots, s.mem
	s.alloc(2*s.limit + 8)
	for _, d := range old {
		if d != (digest{}) {
			s.insertAt(d, s.home(d))
		}
	}
	freeSlots(oldMem)
}

// find reports whether d is in the table, probing from slot i.
func (s *Set) find(d digest, i int) bool {
	slots := s.slots
	for { // ends at an empty slot: there always is one
		switch slots[i] {
		case d:
			return true
		case digest{}:
			return false
		}
		if i++; i == len(slots) {
			i = 0
		}
	}
}

// Has reports whether key is in the set. A key never added is reported
// present only if its digest equals an added key's (see the package comment).
func (s *Set) Has(key []byte) bool {
	if s.n == 0 {
		return false
	}
	d := sum(key)
	return s.find(d, s.home(d))
}

// HasEach sets found[i] to Has(keys[i]) for each key; found must be at least
// as long as keys. It is faster than calling Has in a loop on a table larger
// than the CPU caches: it computes a batch of digests first and touches their
// slots before it compares, so the memory loads overlap instead of waiting
// for each other.
func (s *Set) HasEach(keys [][]byte, found []bool) {
	found = found[:len(keys)]
	if s.n == 0 {
		clear(found)
		return
	}
	var (
		ds    [batch]digest
		homes [batch]int
	)
	for len(keys) > 0 {
		m := min(len(keys), batch)
		for i := range m {
			ds[i] = sum(keys[i])
			homes[i] = s.home(ds[i])
		}
		s.touch(homes[:m])
		for i := range m {
			found[i] = s.find(ds[i], homes[i])
		}
		keys, found = keys[m:], found[m:]
	}
}

// AddEach puts every key in the set, as Add does, overlapping the memory
// loads of a batch of keys the way HasEach does.
func (s *Set) AddEach(keys [][]byte) {
	var (
		ds    [batch]digest
		homes [batch]int
	)
	for len(keys) > 0 {
		m := min(len(keys), batch)
		for s.n+m > s.limit {
			s.grow()
		}
		for i := range m {
			ds[i] = sum(keys[i])
			homes[i] = s.home(ds[i])
		}
		s.touch(homes[:m])
		for i := range m {
			s.insertAt(ds[i], homes[i])
		}
		keys = keys[m:]
	}
}

// touch loads the slots at homes, in a loop with nothing else in it, so the
// CPU has all those loads in flight at once.
func (s *Set) touch(homes []int) {
	var sink uint64
	slots := s.slots
	for _, i := range homes {
		sink += slots[i].lo
	}
	touched.Add(sink)
}

// touched keeps the compiler from dropping the loads of touch.
var touched atomic.Uint64

// Len returns the number of distinct digests in the set.
func (s *Set) Len() int { return s.n }

// Bytes returns the memory held by the table, for measuring bytes per key.
func (s *Set) Bytes() int {
	if s.mem != nil {
		return len(s.mem)
	}
	return len(s.slots) * int(unsafe.Sizeof(digest{}))
}
