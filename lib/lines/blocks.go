package lines

import (
	"bytes"
	"io"
)

// maxEmptyReads is how many reads in a row may return nothing and no error
// before Blocks gives up with io.ErrNoProgress (as bufio.Reader does).
const maxEmptyReads = 100

// Blocks reads an input in blocks of whole lines, the one reader behind
// ckskip's input, ckmark's stdin, the checkpoint's lines and Reader. Each
// block is what one or more reads brought, cut after its last "\n", so the
// callers can work on many lines at once (copy runs of them, count them)
// instead of one line at a time. The start of a line that a block cuts off
// is kept for the next block; the buffer doubles when one line does not fit
// in it, so lines of any length work. A UTF-8 BOM at the start of the input
// is dropped.
type Blocks struct {
	r      io.Reader
	buf    []byte
	max    int   // reads that fill buf double it up to this size
	n      int   // bytes held in buf
	ret    int   // buf[:ret] was returned by the last Next
	bigger bool  // the last read filled buf: use larger reads
	start  bool  // a BOM at the start may not be complete yet
	empty  int   // reads in a row that returned nothing
	err    error // the error that ends the input, once a read returned it
}

// NewBlocks returns a Blocks reading r into a buffer of size bytes. While
// reads fill the buffer it doubles, up to max bytes (max <= size: it stays
// at size), so a short input costs little memory and a long one is read in
// large reads. A line longer than the buffer grows it regardless.
func NewBlocks(r io.Reader, size, max int) *Blocks {
	return &Blocks{r: r, buf: make([]byte, size), max: max, start: true}
}

// Reset makes b read r from its start, keeping b's buffer.
func (b *Blocks) Reset(r io.Reader) {
	*b = Blocks{r: r, buf: b.buf, max: b.max, start: true}
}

// Next returns the next block: one or more whole lines, each ending in
// "\n", valid until the next call. At the end of the input it returns
// io.EOF, and any other error is the reader's (io.ErrNoProgress after many
// empty reads); either way the lines before it have been returned, and Tail
// holds what followed the last "\n".
func (b *Blocks) Next() ([]byte, error) {
	if b.ret > 0 { // keep the cut-off start of a line, at the front
		rest := b.buf[b.ret:b.n]
		if b.bigger && b.err == nil {
			b.buf = make([]byte, 2*len(b.buf))
		}
		b.n, b.ret, b.bigger = copy(b.buf, rest), 0, false
	}
	for b.err == nil {
		if b.n == len(b.buf) { // one line longer than the buffer
			b.buf = append(b.buf, make([]byte, len(b.buf))...)
			b.buf = b.buf[:cap(b.buf)]
		}
		scanned := b.n // buf[:n] holds no "\n"
		m, err := b.r.Read(b.buf[b.n:])
		b.n += m
		switch {
		case m > 0 || err != nil:
			b.empty = 0
		case b.empty < maxEmptyReads-1:
			b.empty++
		default:
			err = io.ErrNoProgress
		}
		b.err = err
		full := b.n == len(b.buf)
		if b.start {
			var decided bool
			if b.n, decided = TrimBOM(b.buf, b.n, err != nil); !decided {
				continue
			}
			b.start, scanned = false, 0
		}
		if i := bytes.LastIndexByte(b.buf[scanned:b.n], '\n'); i >= 0 {
			b.ret = scanned + i + 1
			b.bigger = full && len(b.buf) < b.max
			return b.buf[:b.ret], nil
		}
	}
	return nil, b.err
}

// Tail returns, once Next has returned an error, the bytes after the last
// "\n": an unterminated last line at io.EOF (empty when the input ended
// with "\n"). It is valid until the next call of Next.
func (b *Blocks) Tail() []byte {
	return b.buf[b.ret:b.n]
}

// backChunk is how much LastNewline reads at a time.
const backChunk = 64 << 10

// LastNewline returns the offset of the last "\n" before offset end in r,
// or -1 if there is none. It reads backwards a chunk at a time, so a long
// line costs no more memory than a chunk. It finds where the complete lines
// of a file end, and the start of each line read backwards.
func LastNewline(r io.ReaderAt, end int64) (int64, error) {
	if end <= 0 {
		return -1, nil
	}
	buf := make([]byte, min(end, backChunk))
	for end > 0 { // each step moves end back by a whole chunk
		from := max(end-int64(len(buf)), 0)
		chunk := buf[:end-from]
		if n, err := r.ReadAt(chunk, from); n < len(chunk) {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			return from + int64(i), nil
		}
		end = from
	}
	return -1, nil
}
