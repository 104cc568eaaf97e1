package keyset

import (
	"syscall"
	"unsafe"
)

// hugeMin is the table size from which the table is mapped with huge pages.
const hugeMin = 4 << 20

// hugePage is the size of a huge page on the architectures Go supports
// best; elsewhere the kernel ignores the advice or rounds to its own size.
const hugePage = 2 << 20

// madvHugepage is MADV_HUGEPAGE, which the syscall package lacks.
const madvHugepage = 14

// makeSlots returns a zeroed table of n slots and, for a large table, the
// memory mapping that holds it. A large table is mapped by hand to ask for
// transparent huge pages (the "madvise" setting of most distributions does
// not give them to the Go heap): lookups hit random slots, and with 4 KiB
// pages nearly every one would also miss the TLB. Without huge pages it works
// the same, only slower. The mapping is freed by freeSlots.
func makeSlots(n int) ([]digest, []byte) {
	size := n * int(unsafe.Sizeof(digest{}))
	if size < hugeMin {
		return make([]digest, n), nil
	}
	size = (size + hugePage - 1) &^ (hugePage - 1)
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return make([]digest, n), nil
	}
	syscall.Madvise(mem, madvHugepage) // an error only means small pages
	return unsafe.Slice((*digest)(unsafe.Pointer(&mem[0])), n), mem
}

// freeSlots unmaps a table made by makeSlots; nil means it is on the Go heap.
func freeSlots(mem []byte) {
	if mem != nil {
		syscall.Munmap(mem)
	}
}
