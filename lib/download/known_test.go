package download

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A directory two lines made at once stays fresh whichever mkdir won, and
// one that had a named .part never becomes fresh again.
func TestKnownDirsFresh(t *testing.T) {
	var k knownDirs
	k.add("/a", false) // the line whose mkdir got EEXIST comes first
	k.add("/a", true)
	k.add("/b", true)
	k.add("/b", false) // or second
	if !k.fresh("/a") || !k.fresh("/b") {
		t.Errorf("fresh /a %v, /b %v; want both: this run made them", k.fresh("/a"), k.fresh("/b"))
	}
	k.add("/c", false)
	if k.fresh("/c") || !k.has("/c") {
		t.Errorf("/c (there before the run): fresh %v, known %v; want known, not fresh", k.fresh("/c"), k.has("/c"))
	}
	k.named("/a")
	k.add("/a", true) // a late add of the line that made it
	if k.fresh("/a") || !k.has("/a") {
		t.Errorf("/a after a named .part: fresh %v, known %v; want known, not fresh", k.fresh("/a"), k.has("/a"))
	}
	k.named("/unknown")
	if k.has("/unknown") {
		t.Error("named made an unknown directory known; only mkdir may")
	}
}

// A directory this run's mkdir made is fresh from that moment, before the
// maker's sync is over (a line that got EEXIST may be done in it first, and
// a line started then looked for a .part there: TestFetchSmallFileCalls
// saw 6 to 9 looks for 4 slots), but known durable only once synced.
func TestKnownDirsMade(t *testing.T) {
	var k knownDirs
	k.made("/a")
	if !k.fresh("/a") || k.has("/a") {
		t.Errorf("/a made, not synced: fresh %v, known %v; want fresh, not known", k.fresh("/a"), k.has("/a"))
	}
	k.add("/a", false) // the line whose mkdir got EEXIST, synced first
	if !k.fresh("/a") || !k.has("/a") {
		t.Errorf("/a synced by another line: fresh %v, known %v; want both", k.fresh("/a"), k.has("/a"))
	}
	k.add("/a", true) // the maker's sync ends
	if !k.fresh("/a") {
		t.Error("/a lost its freshness")
	}
	k.add("/b", false)
	k.made("/b") // cannot happen (a directory known exists), and changes nothing
	if k.fresh("/b") {
		t.Error("made turned a known directory fresh")
	}
}

// madeNames answers yes for every name added (a no would skip the look at
// a file this run made and request it again), and no for most others up
// to a million names, concurrently.
func TestMadeNames(t *testing.T) {
	var m madeNames
	if m.mayHave("/out/a") {
		t.Fatal("an empty set has /out/a")
	}
	const n = 1_000_000
	name := func(i int) string { return fmt.Sprintf("/out/127.0.0.1:8080/files/f%07d.bin", i) }
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				m.add(name(i))
			}
		})
	}
	wg.Wait()
	for i := range n {
		if !m.mayHave(name(i)) {
			t.Fatalf("%s was added, but mayHave says no", name(i))
		}
	}
	wrong := 0
	for i := n; i < 2*n; i++ {
		if m.mayHave(name(i)) {
			wrong++
		}
	}
	rate := float64(wrong) / n
	t.Logf("after %d names, %.2f%% of others are said to be there", n, 100*rate)
	if rate > 0.05 {
		t.Errorf("after %d names, %.1f%% of others are said to be there; want a few per cent at most", n, 100*rate)
	}
}

// TestMadeNamesFaultedIn: the first add makes every page of the filter
// resident (written once), so that no later mayHave maps a page to the
// kernel's zero page for an add to copy: that copy flushes the TLB of every
// other CPU running the process, which cost ckfetch 3–5% of its CPU on
// small files (10 alternated rounds, 674 → 637 ms).
func TestMadeNamesFaultedIn(t *testing.T) {
	var m madeNames
	m.add("/out/a")
	bits := m.bits.Load()
	addr := uintptr(unsafe.Pointer(bits))
	size := int(unsafe.Sizeof(*bits))
	page := uintptr(os.Getpagesize())
	start := addr &^ (page - 1)
	length := int((addr + uintptr(size) - start + page - 1) &^ (page - 1))
	vec := make([]byte, length/int(page))
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, start, uintptr(length), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Skipf("mincore: %v", errno)
	}
	resident := 0
	for _, v := range vec {
		resident += int(v & 1)
	}
	if resident < len(vec)-1 { // the pages at its two ends may be shared with other objects: at least one of them is resident anyway
		t.Errorf("%d of the filter's %d pages resident after the first add; want all", resident, len(vec))
	}
	runtime.KeepAlive(bits)
}
