// Package redact keeps credentials written in URLs out of what the tools
// print and record: every message, report and failure reason goes through
// Mask.
package redact

import "strings"

// Mask returns s with the user information of every URL in it replaced by
// "***": "https://user:secret@host/x" becomes "https://***@host/x", and so
// does net/http's own "https://user:***@host/x". s may be a URL or a message
// that quotes URLs anywhere.
//
// A URL is whatever follows "://". Its authority ends at the first '/', '?',
// '#', '<', '>', control character or the end of s, and its user information
// is everything before the authority's last '@'. Spaces and quotes do not end
// an authority, so a password written with a raw space or quote (which a
// message may quote as \") is masked too; the price is that in a message where
// a URL without a path is followed by text holding an '@', that text is
// masked as well.
func Mask(s string) string {
	if !strings.Contains(s, "://") || !strings.Contains(s, "@") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			break
		}
		start := i + len("://")
		b.WriteString(s[:start])
		s = s[start:]
		end := strings.IndexFunc(s, endsAuthority)
		if end < 0 {
			end = len(s)
		}
		if at := strings.LastIndexByte(s[:end], '@'); at >= 0 {
			b.WriteString("***")
			s = s[at:]
		}
	}
	b.WriteString(s)
	return b.String()
}

func endsAuthority(r rune) bool {
	switch r {
	case '/', '?', '#', '<', '>':
		return true
	}
	return r < ' ' || r == 0x7f
}
