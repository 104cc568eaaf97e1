// Package shard splits a list into N disjoint parts by the hash of each line's
// key, the same way on every machine and in every version of ck.
//
// The hash is fixed forever: FNV-1a 64 (offset basis 14695981039346656037,
// prime 1099511628211) of the key's bytes, reduced mod N. Changing it would
// make shards of a list already being worked on overlap and miss lines, so a
// test pins known values.
package shard

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

const (
	offset64 = 14695981039346656037
	prime64  = 1099511628211
)

// Hash returns the FNV-1a 64 hash of key.
func Hash(key []byte) uint64 {
	h := uint64(offset64)
	for _, c := range key {
		h ^= uint64(c)
		h *= prime64
	}
	return h
}

// Spec selects shard K of N.
type Spec struct {
	K, N uint64
}

// Parse reads "K/N" with 0 <= K < N, both decimal.
func Parse(s string) (Spec, error) {
	ks, ns, ok := strings.Cut(s, "/")
	if !ok {
		return Spec{}, errors.New("want K/N, like 0/4")
	}
	k, errK := strconv.ParseUint(ks, 10, 64)
	n, errN := strconv.ParseUint(ns, 10, 64)
	switch {
	case errK != nil || errN != nil:
		return Spec{}, errors.New("K and N must be whole numbers, like 0/4")
	case n == 0:
		return Spec{}, errors.New("N must be at least 1")
	case k >= n:
		return Spec{}, fmt.Errorf("K must be below N (shards are numbered 0 to %d)", n-1)
	}
	return Spec{K: k, N: n}, nil
}

// Of returns the shard, in 0..n-1, that key belongs to among n.
func Of(key []byte, n uint64) uint64 { return Hash(key) % n }

// Keep reports whether key belongs to this shard.
func (s Spec) Keep(key []byte) bool { return Hash(key)%s.N == s.K }

// String returns "K/N".
func (s Spec) String() string { return fmt.Sprintf("%d/%d", s.K, s.N) }
