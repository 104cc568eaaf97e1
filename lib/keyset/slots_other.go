//go:build !linux

package keyset

// makeSlots returns a zeroed table of n slots.
func makeSlots(n int) ([]digest, []byte) { return make([]digest, n), nil }

// freeSlots does nothing: the table is on the Go heap.
func freeSlots([]byte) {}
