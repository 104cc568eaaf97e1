package checkpoint_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ck-tools/ck/lib/checkpoint"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "check.txt")
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

func readAll(t *testing.T, s *checkpoint.Snapshot) (keys []string, last checkpoint.Last, lines int64) {
	t.Helper()
	err := s.Keys(func(batch [][]byte) error {
		for _, k := range batch {
			keys = append(keys, string(k))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Keys: %v", err)
	}
	if last, err = s.Last(); err != nil {
		t.Fatalf("Last: %v", err)
	}
	if lines, err = s.Lines(); err != nil {
		t.Fatalf("Lines: %v", err)
	}
	return keys, last, lines
}

func TestSnapshot(t *testing.T) {
	long := strings.Repeat("x", 1<<20+7)
	tests := []struct {
		name      string
		content   string
		wantKeys  []string
		wantLast  string
		wantLine  int64
		wantCount int64
		wantLines int64
		wantTorn  bool
	}{
		{"empty", "", nil, "", 0, 0, 0, false},
		{"one line", "a\n", []string{"a"}, "a", 1, 1, 1, false},
		{"torn tail ignored", "a\nb\nc", []string{"a", "b"}, "b", 2, 1, 2, true},
		{"only a torn line", "abc", nil, "", 0, 0, 0, true},
		{"torn blank tail", "a\n  ", []string{"a"}, "a", 1, 1, 1, true},
		{"blank lines skipped", "\na\n \t \n\nb\n\n \n", []string{"a", "b"}, "b", 5, 1, 7, false},
		{"only blank lines", "\n \n\t\r\n", nil, "", 0, 0, 3, false},
		{"crlf", "a\r\nb\r\n", []string{"a", "b"}, "b", 2, 1, 2, false},
		{"trailing cr not in key", "a\r\r\nb\r\n\r\r\n", []string{"a", "b"}, "b", 2, 1, 3, false},
		{"spaces around keys", " a \n\tb\t\r\n", []string{"a", "b"}, "b", 2, 1, 2, false},
		{"bom", "\xEF\xBB\xBFa\nb\n", []string{"a", "b"}, "b", 2, 1, 2, false},
		{"bom on the last line", "\xEF\xBB\xBFa\n\n", []string{"a"}, "a", 1, 1, 2, false},
		{"bom only", "\xEF\xBB\xBF", nil, "", 0, 0, 0, false},
		{"bom then torn", "\xEF\xBB\xBFab", nil, "", 0, 0, 0, true},
		{"count of the last key", "a\nb\na\n a\r\nab\nb a\na\n\n", []string{"a", "b", "a", "a", "ab", "b a", "a"}, "a", 7, 4, 8, false},
		{"key inside other lines not counted", "xa\nax\na\n", []string{"xa", "ax", "a"}, "a", 3, 1, 3, false},
		{"invalid utf-8", "\xff\xfe\n\xc3\n", []string{"\xff\xfe", "\xc3"}, "\xc3", 2, 1, 2, false},
		{"1 MiB line", "a\n" + long + "\n" + long + "\n", []string{"a", long, long}, long, 3, 2, 3, false},
		{"1 MiB torn line", "a\n" + long, []string{"a"}, "a", 1, 1, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := checkpoint.Open(writeFile(t, tt.content))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			if got := s.Torn(); got != tt.wantTorn {
				t.Errorf("Torn() = %v, want %v", got, tt.wantTorn)
			}
			keys, last, lines := readAll(t, s)
			if strings.Join(keys, "|") != strings.Join(tt.wantKeys, "|") || len(keys) != len(tt.wantKeys) {
				t.Errorf("Keys = %.40q, want %.40q", keys, tt.wantKeys)
			}
			if string(last.Key) != tt.wantLast || last.Line != tt.wantLine || last.Count != tt.wantCount {
				t.Errorf("Last() = {%.20q line %d count %d}, want {%.20q line %d count %d}",
					last.Key, last.Line, last.Count, tt.wantLast, tt.wantLine, tt.wantCount)
			}
			if tt.wantLast == "" && last.Key != nil {
				t.Errorf("Last().Key = %q, want nil", last.Key)
			}
			if lines != tt.wantLines {
				t.Errorf("Lines() = %d, want %d", lines, tt.wantLines)
			}
		})
	}
}

func TestMissingIsEmpty(t *testing.T) {
	s, err := checkpoint.Open(filepath.Join(t.TempDir(), "none.txt"))
	if err != nil {
		t.Fatalf("Open of a missing file: %v, want an empty snapshot", err)
	}
	defer s.Close()
	keys, last, lines := readAll(t, s)
	if len(keys) != 0 || last.Key != nil || lines != 0 || s.Torn() {
		t.Errorf("missing file: keys %q, last %q, lines %d, torn %v; want nothing", keys, last.Key, lines, s.Torn())
	}
}

// TestAppendAfterOpenUnseen: what a writer appends after Open, even the end
// of a line torn at Open, is not part of the snapshot.
func TestAppendAfterOpenUnseen(t *testing.T) {
	name := writeFile(t, "a\nb\nc")
	s, err := checkpoint.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("\nd\nb\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	keys, last, lines := readAll(t, s)
	if got := strings.Join(keys, ","); got != "a,b" {
		t.Errorf("Keys = %q, want a,b", got)
	}
	if string(last.Key) != "b" || last.Count != 1 || last.Line != 2 || lines != 2 {
		t.Errorf("Last() = %q count %d line %d, lines %d; want b count 1 line 2, lines 2", last.Key, last.Count, last.Line, lines)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		want string
	}{
		{"directory", dir, "not a regular file"},
		{"not a directory on the way", filepath.Join(writeFile(t, "a\n"), "x"), "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := checkpoint.Open(tt.path)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded, want an error", tt.path)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("Open(%q) error = %q, want it to name the file and say %q", tt.path, err, tt.want)
			}
		})
	}
}

func TestKeysStopsOnError(t *testing.T) {
	s, err := checkpoint.Open(writeFile(t, strings.Repeat("k\n", 10000)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	calls := 0
	stop := os.ErrClosed
	if err := s.Keys(func([][]byte) error { calls++; return stop }); err != stop {
		t.Errorf("Keys error = %v, want the function's error", err)
	}
	if calls != 1 {
		t.Errorf("function called %d times after returning an error, want 1", calls)
	}
}
