package shard_test

import (
	"hash/fnv"
	"testing"

	"github.com/ck-tools/ck/lib/shard"
)

// TestHashPinned pins the hash to published FNV-1a 64 test vectors and to
// the shards of a few keys: if this test fails, the split of every list
// already sharded would change. Do not update the values; revert the change.
func TestHashPinned(t *testing.T) {
	tests := []struct {
		key   string
		hash  uint64
		n     uint64
		shard uint64
	}{
		{"", 0xcbf29ce484222325, 7, 2},
		{"a", 0xaf63dc4c8601ec8c, 7, 5},
		{"foobar", 0x85944171f73967e8, 7, 6},
		{"https://example.com/a.jpg", 13362766570694759170, 7, 1},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := shard.Hash([]byte(tt.key)); got != tt.hash {
				t.Errorf("Hash(%q) = %#x, want %#x", tt.key, got, tt.hash)
			}
			if got := shard.Of([]byte(tt.key), tt.n); got != tt.shard {
				t.Errorf("Of(%q, %d) = %d, want %d", tt.key, tt.n, got, tt.shard)
			}
			if !(shard.Spec{K: tt.shard, N: tt.n}).Keep([]byte(tt.key)) {
				t.Errorf("Spec{%d,%d}.Keep(%q) = false, want true", tt.shard, tt.n, tt.key)
			}
		})
	}
}

// TestHashIsStdlibFNV1a64 checks the hash against hash/fnv on many keys.
func TestHashIsStdlibFNV1a64(t *testing.T) {
	key := []byte{}
	for i := 0; i < 300; i++ {
		key = append(key, byte(i*31+7))
		h := fnv.New64a()
		h.Write(key)
		if got, want := shard.Hash(key), h.Sum64(); got != want {
			t.Fatalf("Hash(len %d) = %#x, want %#x", len(key), got, want)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    shard.Spec
		wantErr bool
	}{
		{"0/1", shard.Spec{K: 0, N: 1}, false},
		{"3/4", shard.Spec{K: 3, N: 4}, false},
		{"4/4", shard.Spec{}, true},
		{"0/0", shard.Spec{}, true},
		{"-1/4", shard.Spec{}, true},
		{"1", shard.Spec{}, true},
		{"a/b", shard.Spec{}, true},
		{"1/", shard.Spec{}, true},
		{"/4", shard.Spec{}, true},
		{" 1/4", shard.Spec{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := shard.Parse(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Parse(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
