package lines_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ck-tools/ck/lib/lines"
)

type line struct {
	text       string
	terminated bool
}

func readAll(t *testing.T, r io.Reader) []line {
	t.Helper()
	lr := lines.NewReader(r)
	var got []line
	for range 1000 {
		l, term, err := lr.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, line{string(l), term})
	}
	t.Fatal("no end of input")
	return nil
}

func TestReader(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	tests := []struct {
		name, in string
		want     []line
	}{
		{"empty", "", nil},
		{"LF", "a\nb\n", []line{{"a", true}, {"b", true}}},
		{"CRLF", "a\r\nb\r\n", []line{{"a", true}, {"b", true}}},
		{"lone CR stays", "a\rb\n", []line{{"a\rb", true}}},
		{"no final newline", "a\nb", []line{{"a", true}, {"b", false}}},
		{"BOM dropped", "\xEF\xBB\xBFa\n", []line{{"a", true}}},
		{"BOM only at the start", "a\n\xEF\xBB\xBFb\n", []line{{"a", true}, {"\xEF\xBB\xBFb", true}}},
		{"blank lines kept", "\n \n", []line{{"", true}, {" ", true}}},
		{"invalid UTF-8", "\xff\xfe\n", []line{{"\xff\xfe", true}}},
		{"1 MiB line", long + "\nz\n", []line{{long, true}, {"z", true}}},
		{"1 MiB unterminated", long, []line{{long, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tt.in), iotest.OneByteReader(strings.NewReader(tt.in))} {
				got := readAll(t, r)
				if len(got) != len(tt.want) {
					t.Fatalf("got %d lines, want %d", len(got), len(tt.want))
				}
				for i := range got {
					if got[i] != tt.want[i] {
						t.Errorf("line %d = %.40q %v, want %.40q %v", i, got[i].text, got[i].terminated, tt.want[i].text, tt.want[i].terminated)
					}
				}
			}
		})
	}
}

func TestReaderError(t *testing.T) {
	boom := errors.New("boom")
	lr := lines.NewReader(io.MultiReader(strings.NewReader("a\n"), iotest.ErrReader(boom)))
	if l, _, err := lr.Next(); err != nil || string(l) != "a" {
		t.Fatalf("first line: %q, %v", l, err)
	}
	if _, _, err := lr.Next(); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the reader's error", err)
	}
}

func TestKey(t *testing.T) {
	for in, want := range map[string]string{
		"a": "a", " a\t": "a", "\t \t": "", "a b": "a b", "": "",
		"a\r": "a", "\ra\r\r": "a", "\r \t\r": "", "a\rb": "a\rb", " \r\ta\t\r ": "a",
	} {
		if got := lines.Key([]byte(in)); !bytes.Equal(got, []byte(want)) {
			t.Errorf("Key(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTrimBOM(t *testing.T) {
	tests := []struct {
		in      string
		ended   bool
		want    string
		decided bool
	}{
		{"\xEF\xBB\xBFab", false, "ab", true},
		{"ab\n", false, "ab\n", true},
		{"\xEF\xBB", false, "\xEF\xBB", false}, // too short to tell: read more
		{"\xEF\xBB", true, "\xEF\xBB", true},   // the whole input
		{"\xEF\xBB\xBF", true, "", true},
		{"", true, "", true},
	}
	for _, tt := range tests {
		buf := []byte(tt.in)
		n, decided := lines.TrimBOM(buf, len(buf), tt.ended)
		if string(buf[:n]) != tt.want || decided != tt.decided {
			t.Errorf("TrimBOM(%q, ended=%v) = %q, %v; want %q, %v", tt.in, tt.ended, buf[:n], decided, tt.want, tt.decided)
		}
	}
}
