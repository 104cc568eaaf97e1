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
