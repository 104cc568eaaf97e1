// Package lines reads records the way all three ck tools agree on: one line
// each, ended by "\n" or "\r\n", the last one possibly unterminated, a UTF-8
// BOM at the start of the input dropped, lines of any length. It also defines
// a line's key, the part two lines are compared by.
package lines

import (
	"bufio"
	"bytes"
	"io"
)

// BOM is the UTF-8 byte order mark, which is not part of a file's first line.
var BOM = []byte{0xEF, 0xBB, 0xBF}

// TrimBOM is for readers that read blocks rather than lines: buf[:n] holds
// the first bytes of an input, and ended tells whether the input may have
// more. Once enough bytes are in to decide (decided), a leading BOM has been
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

// BufSize is the read buffer of a Reader. Longer lines still work; they are
// gathered in a separate, growing buffer.
const BufSize = 256 << 10

// Reader yields the lines of an input one at a time, never holding more than
// the current line (and its read buffer) in memory.
type Reader struct {
	r     *bufio.Reader
	long  []byte // gathers a line longer than the read buffer
	start bool   // nothing read yet: a BOM may follow
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, BufSize), start: true}
}

// Next returns the next line without its ending and whether it had one
// (false only for an unterminated last line). At the end of the input it
// returns io.EOF; any other error is the reader's. The returned slice is only
// valid until the next call.
func (r *Reader) Next() (line []byte, terminated bool, err error) {
	if r.start {
		r.start = false
		if p, _ := r.r.Peek(len(BOM)); bytes.Equal(p, BOM) {
			r.r.Discard(len(BOM))
		}
	}
	line, err = r.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		r.long = append(r.long[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = r.r.ReadSlice('\n')
			r.long = append(r.long, line...)
		}
		line = r.long
	}
	switch {
	case err == io.EOF && len(line) > 0:
		return line, false, nil
	case err != nil:
		return nil, false, err
	}
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
// both have the key "x".
func Key(line []byte) []byte {
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
