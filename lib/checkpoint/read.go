package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/ck-tools/ck/lib/lines"
)

// blockSize is the size of the reads of a checkpoint. Longer lines still
// work: the buffer grows to hold one whole line.
const blockSize = 1 << 20

// keyBatch is at most how many keys Keys passes to its function at once.
const keyBatch = 4096

// Snapshot is a checkpoint file as it was when opened: its complete lines
// then. Bytes appended later are never read, so a ckmark appending at the
// same time cannot change what the reader sees half way through.
type Snapshot struct {
	name  string
	f     *os.File // nil when the file does not exist
	start int64    // offset of the first line: after a BOM
	end   int64    // offset after the last "\n": the complete lines end here
	size  int64    // size when opened; [end, size) is a torn line
}

// Last describes the last complete non-blank line of a checkpoint, which is
// where ckskip resumes in after mode.
type Last struct {
	Key   []byte // the line's key; nil when the checkpoint has no such line
	Line  int64  // its line number, counting from 1
	Count int64  // how many complete lines of the checkpoint have this key
}

// Open opens the checkpoint name for reading and takes its snapshot. A file
// that does not exist gives an empty snapshot: on a first run there is
// nothing done yet.
func Open(name string) (*Snapshot, error) {
	s := &Snapshot{name: name}
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if !info.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("checkpoint %s: not a regular file", name)
	}
	s.f, s.size = f, info.Size()
	var head [3]byte
	if n, _ := f.ReadAt(head[:], 0); n == len(lines.BOM) && bytes.Equal(head[:], lines.BOM) {
		s.start = int64(len(lines.BOM))
	}
	nl, err := s.prevNewline(s.size)
	if err != nil {
		f.Close()
		return nil, err
	}
	s.end = max(nl+1, s.start)
	return s, nil
}

// Close closes the file.
func (s *Snapshot) Close() error {
	if s.f == nil {
		return nil
	}
	return s.f.Close()
}

// Name returns the checkpoint's file name.
func (s *Snapshot) Name() string { return s.name }

// Torn reports whether the snapshot ends in a line without a newline, left
// by a crash in the middle of an append. That fragment is not part of the
// checkpoint: no method here ever returns it.
func (s *Snapshot) Torn() bool { return s.size > s.end }

// Lines returns the number of complete lines, blank ones included: an upper
// bound on the number of keys, for sizing a set before filling it.
func (s *Snapshot) Lines() (int64, error) {
	var n int64
	err := s.blocks(func(b []byte) error {
		n += int64(bytes.Count(b, []byte{'\n'}))
		return nil
	})
	return n, err
}

// Keys calls fn with the keys of the complete non-blank lines, in file order,
// a batch at a time. The keys are only valid until fn returns. An error from
// fn stops the reading and is returned.
func (s *Snapshot) Keys(fn func(keys [][]byte) error) error {
	keys := make([][]byte, 0, keyBatch)
	return s.blocks(func(b []byte) error {
		for len(b) > 0 {
			i := bytes.IndexByte(b, '\n')
			if key := lines.Key(lines.TrimEnding(b[:i+1])); len(key) > 0 {
				keys = append(keys, key)
				if len(keys) == keyBatch {
					if err := fn(keys); err != nil {
						return err
					}
					keys = keys[:0]
				}
			}
			b = b[i+1:]
		}
		if len(keys) > 0 {
			err := fn(keys)
			keys = keys[:0]
			return err
		}
		return nil
	})
}

// Last finds the last complete non-blank line, its line number and how many
// times its key occurs in the checkpoint. It reads the end of the file
// backwards to find the line, then the whole file once, counting.
func (s *Snapshot) Last() (Last, error) {
	var (
		last  Last
		after int64 // blank lines after the last non-blank one
		pos   = s.end
	)
	for pos > s.start { // [s.start, pos) holds whole lines; each step drops one
		nl, err := s.prevNewline(pos - 1)
		if err != nil {
			return Last{}, err
		}
		from := max(nl+1, s.start)
		line := make([]byte, pos-from)
		if _, err := s.f.ReadAt(line, from); err != nil {
			return Last{}, s.readErr(err)
		}
		if key := lines.Key(lines.TrimEnding(line)); len(key) > 0 {
			last.Key = key
			break
		}
		after++
		pos = from
	}
	if last.Key == nil {
		return Last{}, nil
	}
	var total int64
	err := s.blocks(func(b []byte) error {
		total += int64(bytes.Count(b, []byte{'\n'}))
		last.Count += count(b, last.Key)
		return nil
	})
	last.Line = total - after
	return last, err
}

// count returns how many of the whole lines in b have key as their key.
func count(b, key []byte) int64 {
	var n int64
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i >= len(key) && bytes.Equal(lines.Key(lines.TrimEnding(b[:i+1])), key) {
			n++
		}
		b = b[i+1:]
	}
	return n
}

// prevNewline returns the offset of the last "\n" before offset pos, or -1.
func (s *Snapshot) prevNewline(pos int64) (int64, error) {
	if s.f == nil {
		return -1, nil
	}
	nl, err := lines.LastNewline(s.f, pos)
	if err != nil {
		return 0, s.readErr(err)
	}
	return nl, nil
}

// blocks calls fn with consecutive pieces of the complete lines of the
// snapshot, each made of whole lines ending in "\n" (lines.Blocks, which
// also drops the BOM before s.start). The piece is only valid until fn
// returns.
func (s *Snapshot) blocks(fn func(b []byte) error) error {
	if s.f == nil || s.end <= s.start {
		return nil
	}
	size := int(min(blockSize, s.end))
	b := lines.NewBlocks(io.NewSectionReader(s.f, 0, s.end), size, size)
	for {
		block, err := b.Next()
		if err == io.EOF {
			if len(b.Tail()) > 0 {
				// The section ends with "\n" unless the file was cut short
				// while being read.
				return fmt.Errorf("checkpoint %s: file shrank while being read", s.name)
			}
			return nil
		}
		if err != nil {
			return s.readErr(err)
		}
		if err := fn(block); err != nil {
			return err
		}
	}
}

func (s *Snapshot) readErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("checkpoint %s: file shrank while being read", s.name)
	}
	return fmt.Errorf("checkpoint: %w", err)
}
