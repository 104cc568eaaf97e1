// Package lines reads records the way all three ck tools agree on: one line
// each, ended by "\n" or "\r\n", the last one possibly unterminated, a UTF-8
// BOM at the start of the input dropped, lines of any length. Blocks is the
// one reader of lines, in blocks of whole lines (ckskip's input, ckmark's
// stdin, a checkpoint); Reader yields them one at a time (ckfetch), and
// LastNewline scans a file backwards. It also defines a line's key, the part
// two lines are compared by.
package lines

import (
	"bytes"
	"io"
)

// BOM is the UTF-8 byte order mark, which is not part of a file's first line.
var BOM = []byte{0xEF, 0xBB, 0xBF}

// TrimBOM is for readers that read blocks rather than lines (Blocks):
// buf[:n] holds the first bytes of an input, and ended tells whether the
// input may have more. Once enough bytes are in to decide (decided), a leading BOM has been
// removed from buf in place and n is the new count; until then, read more
// and call again.
func TrimBOM(buf []byte, n int, ended bool) (newN int, decided bool) {
	if n < len(BOM) && !ended {
		return n, false
	}
	if bytes.HasPrefix(buf[:n], BOM) {
		n = copy(buf, buf[len(BOM):n])
	}
	return n, true
}

// BufSize is the read buffer of a Reader. Longer lines still work: the
// buffer grows to hold one whole line.
const BufSize = 256 << 10

// Reader yields the lines of an input one at a time, never holding more than
// the current line (and its read buffer) in memory. It reads through Blocks.
type Reader struct {
	b     *Blocks
	block []byte // the lines of the current block not yet returned
	ended bool   // the input ended; its tail, if any, was returned
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader {
	return &Reader{b: NewBlocks(r, BufSize, BufSize)}
}

// Next returns the next line without its ending and whether it had one
// (false only for an unterminated last line). At the end of the input it
// returns io.EOF; any other error is the reader's, and the start of a line
// read before it is dropped. The returned slice is only valid until the next
// call.
func (r *Reader) Next() (line []byte, terminated bool, err error) {
	for len(r.block) == 0 {
		if r.ended {
			return nil, false, io.EOF
		}
		block, err := r.b.Next()
		if err == io.EOF {
			r.ended = true
			if tail := r.b.Tail(); len(tail) > 0 {
				return tail, false, nil
			}
			return nil, false, io.EOF
		}
		if err != nil {
			return nil, false, err
		}
		r.block = block
	}
	i := bytes.IndexByte(r.block, '\n')
	line, r.block = r.block[:i+1], r.block[i+1:]
	return TrimEnding(line), true, nil
}

// TrimEnding returns line without a final "\n" or "\r\n".
func TrimEnding(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
	}
	return line
}

// Key returns the line without leading and trailing spaces, tabs and
// carriage returns. Two lines are the same record when their keys are equal
// byte for byte; a blank key is never emitted, echoed or recorded. A "\r"
// is trimmed so that a list written with "\r\r\n" endings resumes: ckskip
// prints its line "x\r", the next tool reads that as the CRLF line "x", and
// both have the key "x". It takes a string as well as bytes: the key of a
// string is a part of it, so keeping both costs one copy of the line.
func Key[S ~[]byte | ~string](line S) S {
	i, j := 0, len(line)
	for i < j && IsBlank(line[i]) {
		i++
	}
	for j > i && IsBlank(line[j-1]) {
		j--
	}
	return line[i:j]
}

// IsBlank reports whether c is one of the bytes Key trims: a space, a tab
// or a carriage return. A line that starts with any other byte has a
// non-blank key; the block-wise fast paths rely on that.
func IsBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }
