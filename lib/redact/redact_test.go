package redact_test

import (
	"testing"

	"github.com/ck-tools/ck/lib/redact"
)

func TestMask(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://example.org/a@b", "https://example.org/a@b"},
		{"https://user:secret@example.org/x", "https://***@example.org/x"},
		{"https://token@example.org", "https://***@example.org"},
		{"http://u:p@h:8080?q=1", "http://***@h:8080?q=1"},
		{"http://u:p@h#f", "http://***@h#f"},
		{"http://u:p@x@h/", "http://***@h/"}, // the last @ ends the user information
		{"http://u:p w@h/", "http://***@h/"}, // a raw space does not hide a password
		{`Get "https://user:***@h/x": EOF`, `Get "https://***@h/x": EOF`},
		{`parse "https://u:s3cr\"et@h/%zz": invalid URL escape`, `parse "https://***@h/%zz": invalid URL escape`},
		{"a http://u:p@h/1 and https://v:q@g/2", "a http://***@h/1 and https://***@g/2"},
		{"https://h/ mail me@there", "https://h/ mail me@there"},
		{"no url at all, me@there", "no url at all, me@there"},
		{"https://u:p@", "https://***@"},
		{"://", "://"},
		{"", ""},
	} {
		if got := redact.Mask(tc.in); got != tc.want {
			t.Errorf("Mask(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
