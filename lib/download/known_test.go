package download

import "testing"

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
