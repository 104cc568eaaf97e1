package fetchtest

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"time"
)

// DefaultSize is the body size of /f/NAME when the URL has no size option.
const DefaultSize = 1024

// baseModTime is the Last-Modified time of every resource of version 0;
// version v is v seconds later, so each version has its own validator.
var baseModTime = time.Date(2024, time.January, 2, 3, 4, 5, 0, time.UTC)

// Body returns the size bytes that the server sends for /f/NAME. name may be
// given with or without its "/f/" prefix. The bytes are the same for every
// size up to the shorter one (a body is a prefix of any longer one).
func Body(name string, size int64) []byte {
	return BodyVersion(name, 0, size)
}

// BodyVersion returns the body of the given version of /f/NAME. Version 0 is
// what Body returns; with etag=changing the n-th request for a URL (counting
// from 1, see Server.Requests) is answered with version n.
func BodyVersion(name string, version int, size int64) []byte {
	b := make([]byte, size)
	newContent(name, version).fill(b, 0)
	return b
}

// BodyReader returns the body of /f/NAME as a stream that never holds it in
// memory, for large files: it is an io.Reader, io.Seeker and io.ReaderAt.
func BodyReader(name string, size int64) *io.SectionReader {
	return BodyVersionReader(name, 0, size)
}

// BodyVersionReader is BodyReader for the given version (see BodyVersion).
func BodyVersionReader(name string, version int, size int64) *io.SectionReader {
	return io.NewSectionReader(newContent(name, version), 0, size)
}

// content is an endless deterministic byte stream with random access: block
// i of 8 bytes is a SplitMix64 output of seed and i.
type content struct{ seed uint64 }

func newContent(name string, version int) content {
	name = strings.TrimPrefix(name, "/f/")
	h := fnv.New64a()
	h.Write([]byte(name))
	return content{seed: h.Sum64() ^ mix64(uint64(version)+0x5851f42d4c957f2d)}
}

const golden = 0x9e3779b97f4a7c15

// mix64 is the SplitMix64 finalizer.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// fill writes the stream's bytes from offset off into p.
func (c content) fill(p []byte, off int64) {
	var blk [8]byte
	for len(p) > 0 {
		i := uint64(off) / 8
		binary.LittleEndian.PutUint64(blk[:], mix64(c.seed+(i+1)*golden))
		k := copy(p, blk[off%8:])
		p = p[k:]
		off += int64(k)
	}
}

// ReadAt implements io.ReaderAt over the endless stream.
func (c content) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("fetchtest: negative offset %d", off)
	}
	c.fill(p, off)
	return len(p), nil
}

// etag is the strong validator of one version of one representation.
func etag(name string, version int, size int64, gzipped bool) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%d\x00%d", strings.TrimPrefix(name, "/f/"), version, size)
	tag := fmt.Sprintf("%016x", h.Sum64())
	if gzipped {
		tag += "-gzip"
	}
	return `"` + tag + `"`
}

func modTime(version int) time.Time {
	return baseModTime.Add(time.Duration(version) * time.Second)
}
