package download

import "testing"

// ClassifyLocal exposes classifyLocal: fatal reports whether err stops the
// run.
func ClassifyLocal(err error, root string) (fatal bool) {
	_, fatal = classifyLocal(err, root).(fatalError)
	return fatal
}

// SetMaxKnownDirs bounds the directories a Fetcher remembers to n until t
// ends.
func SetMaxKnownDirs(t testing.TB, n int) {
	old := maxKnownDirs
	maxKnownDirs = n
	t.Cleanup(func() { maxKnownDirs = old })
}

// KnownDirs is how many directories f remembers as made and synced.
func KnownDirs(f *Fetcher) int { return f.known.len() }
