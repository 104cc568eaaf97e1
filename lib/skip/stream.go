package skip

import (
	"bufio"
	"bytes"
	"context"
	"io"

	"github.com/ck-tools/ck/lib/checkpoint"
	"github.com/ck-tools/ck/lib/keyset"
	"github.com/ck-tools/ck/lib/lines"
	"github.com/ck-tools/ck/lib/shard"
)

// blockSize is the size of the input reads. A longer line grows the buffer
// to hold it whole.
const blockSize = 1 << 20

// setBatch is how many keys are looked up in the set at once.
const setBatch = 256

type mode int

const (
	emitting mode = iota // print every line (after the resume point)
	seeking              // looking for the resume point; print nothing
	setting              // print the lines whose key is not in the set
)

// runner holds the state of one run across the input files.
type runner struct {
	ctx    context.Context
	w      *bufio.Writer
	ew     *errWriter
	shard  *shard.Spec // nil: every line
	mode   mode
	blocks *lines.Blocks // the reader, its buffer kept from one input to the next

	last       checkpoint.Last // seeking: the resume key and its count
	seen       int64           // seeking: occurrences of last.Key so far
	otherShard bool            // seeking: last.Key is not in our shard

	set   *keyset.Set
	lines [][]byte // setting: a batch of lines and their keys
	keys  [][]byte
	found []bool
}

// file streams one input: whole lines in blocks, then the unterminated last
// line if any. A BOM at its start is dropped. The cancellation of ctx is
// checked before each read.
func (r *runner) file(rd io.Reader) error {
	rd = ctxReader{r.ctx, rd}
	if r.blocks == nil {
		r.blocks = lines.NewBlocks(rd, firstBlock, blockSize)
	} else {
		r.blocks.Reset(rd) // keep the buffer from one input to the next
	}
	for {
		b, err := r.blocks.Next()
		if err == io.EOF {
			if tail := r.blocks.Tail(); len(tail) > 0 {
				r.line(tail) // a last line without an ending is still a line
				if r.mode == setting {
					r.flushSet()
				}
			}
			return r.writeErr()
		}
		if err != nil {
			return err
		}
		if err := r.block(b); err != nil {
			return err
		}
	}
}

// firstBlock is the size of the first read buffer. It doubles while reads
// fill it, up to blockSize, so a short input costs little memory.
const firstBlock = 64 << 10

// ctxReader reads r until ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (r *runner) writeErr() error {
	if r.ew.err != nil {
		return writeError{r.ew.err}
	}
	return nil
}

// block handles b, made of whole lines each ending in "\n".
func (r *runner) block(b []byte) error {
	if r.mode == seeking {
		b = r.seek(b)
	}
	switch {
	case len(b) == 0:
	case r.mode == setting:
		r.setBlock(b)
	case r.shard == nil:
		r.emit(b)
	default:
		for len(b) > 0 {
			i := bytes.IndexByte(b, '\n')
			r.line(lines.TrimEnding(b[:i+1]))
			b = b[i+1:]
		}
	}
	return r.writeErr()
}

// seek counts the lines of b whose key is the resume key and returns what
// follows the resume point, or nil if it is not in b. The shard filter is
// implied: every line with that key is in the key's shard.
func (r *runner) seek(b []byte) []byte {
	if r.otherShard {
		return nil
	}
	key := r.last.Key
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i >= len(key) && bytes.Equal(lines.Key(lines.TrimEnding(b[:i+1])), key) {
			if r.seen++; r.seen == r.last.Count {
				r.mode = emitting
				return b[i+1:]
			}
		}
		b = b[i+1:]
	}
	return nil
}

// emit prints every line of b. Runs of lines that print unchanged (they
// start with neither a byte Key trims nor their ending, so their key is not
// blank, and do not end in "\r\n") go out in one write; the others are
// checked one by one.
func (r *runner) emit(b []byte) {
	run := 0 // start of the run of unchanged lines
	for i, rest := 0, b; len(rest) > 0; {
		j := bytes.IndexByte(rest, '\n')
		if j == 0 || lines.IsBlank(rest[0]) || rest[j-1] == '\r' {
			r.w.Write(b[run:i])
			line := lines.TrimEnding(rest[:j+1])
			if len(lines.Key(line)) > 0 {
				r.w.Write(line)
				r.w.WriteByte('\n')
			}
			run = i + j + 1
		}
		i += j + 1
		rest = rest[j+1:]
	}
	r.w.Write(b[run:])
}

// setBlock prints the lines of b whose key is not in the set.
func (r *runner) setBlock(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		r.line(lines.TrimEnding(b[:i+1]))
		b = b[i+1:]
	}
	r.flushSet()
}

// line handles one line, without its ending, the slow way.
func (r *runner) line(line []byte) {
	key := lines.Key(line)
	if len(key) == 0 || r.shard != nil && !r.shard.Keep(key) {
		return
	}
	switch r.mode {
	case seeking:
		if !r.otherShard && bytes.Equal(key, r.last.Key) {
			if r.seen++; r.seen == r.last.Count {
				r.mode = emitting
			}
		}
	case emitting:
		r.w.Write(line)
		r.w.WriteByte('\n')
	case setting:
		r.lines = append(r.lines, line)
		r.keys = append(r.keys, key)
		if len(r.keys) == setBatch {
			r.flushSet()
		}
	}
}

// flushSet looks up the batched keys and prints the lines not found.
func (r *runner) flushSet() {
	if len(r.keys) == 0 {
		return
	}
	if cap(r.found) < len(r.keys) {
		r.found = make([]bool, setBatch)
	}
	found := r.found[:len(r.keys)]
	r.set.HasEach(r.keys, found)
	for i, line := range r.lines {
		if !found[i] {
			r.w.Write(line)
			r.w.WriteByte('\n')
		}
	}
	r.lines, r.keys = r.lines[:0], r.keys[:0]
}
