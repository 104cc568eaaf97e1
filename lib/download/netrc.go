package download

// Credentials from a netrc file, read as curl reads it.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Netrc holds the entries of a netrc file: "machine HOST login NAME
// password SECRET" for one host, "default login NAME password SECRET" for
// the others. The format is curl's (and ftp's): words separated by spaces,
// tabs and newlines, in any layout; a line whose first word starts with '#'
// is a comment; a word may be written in double quotes, with \" \\ \n \r \t
// escapes, to hold spaces; "account" is read and ignored, and "macdef NAME"
// skips the macro's lines up to the next empty line.
type Netrc struct {
	machines []netrcEntry // in file order
	def      *netrcEntry  // the default entry, or nil
}

type netrcEntry struct {
	machine         string
	login, password string
}

// ReadNetrc reads the netrc file name. Its errors name the file, and the
// line for a syntax error (NAME:LINE: what is wrong).
func ReadNetrc(name string) (*Netrc, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return ParseNetrc(name, string(b))
}

// ParseNetrc parses the netrc text data, read from the file name.
func ParseNetrc(name, data string) (*Netrc, error) {
	n := &Netrc{}
	t := netrcTokens{name: name, s: data, line: 1, bol: true}
	var cur *netrcEntry // the entry that login and password go to
	for {
		word, err := t.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch word {
		case "machine":
			host, err := t.value(word)
			if err != nil {
				return nil, err
			}
			n.machines = append(n.machines, netrcEntry{machine: host})
			cur = &n.machines[len(n.machines)-1]
		case "default":
			if n.def != nil {
				return nil, t.errorf("a second \"default\" entry")
			}
			n.def = &netrcEntry{}
			cur = n.def
		case "login", "password", "account":
			v, err := t.value(word)
			if err != nil {
				return nil, err
			}
			if cur == nil {
				return nil, t.errorf("%q before any \"machine\" or \"default\"", word)
			}
			switch word {
			case "login":
				cur.login = v
			case "password":
				cur.password = v
			}
		case "macdef":
			if _, err := t.value(word); err != nil {
				return nil, err
			}
			t.skipMacro()
		default:
			// The word is not shown: it may be part of a password.
			return nil, t.errorf("a word that is not machine, default, login, password, account or macdef (a value with spaces must be in double quotes)")
		}
	}
	return n, nil
}

// lookup returns the credentials for host (a host name, no port): those of
// its first "machine" entry (with the given login, if login is not ""),
// else, if withDefault, those of the "default" entry.
func (n *Netrc) lookup(host, login string, withDefault bool) (user, password string, ok bool) {
	if n == nil {
		return "", "", false
	}
	fits := func(e *netrcEntry) bool { return login == "" || e.login == login }
	for i := range n.machines {
		if e := &n.machines[i]; strings.EqualFold(e.machine, host) && fits(e) {
			return e.login, e.password, true
		}
	}
	if withDefault && n.def != nil && fits(n.def) {
		return n.def.login, n.def.password, true
	}
	return "", "", false
}

// netrcTokens splits a netrc file into words, counting lines.
type netrcTokens struct {
	name      string
	s         string // what is left to read
	line      int    // the line s starts on
	wordStart int    // the line of the last word
	bol       bool   // no word yet on this line
}

func (t *netrcTokens) errorf(format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", t.name, t.wordStart, fmt.Sprintf(format, args...))
}

// next returns the next word, io.EOF at the end.
func (t *netrcTokens) next() (string, error) {
	for len(t.s) > 0 {
		c := t.s[0]
		switch {
		case c == '\n':
			t.line++
			t.bol = true
			t.s = t.s[1:]
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			t.s = t.s[1:]
		case c == '#' && t.bol: // a comment line: skip to its end
			if i := strings.IndexByte(t.s, '\n'); i >= 0 {
				t.s = t.s[i:]
			} else {
				t.s = ""
			}
		default:
			t.wordStart, t.bol = t.line, false
			if c == '"' {
				return t.quoted()
			}
			i := strings.IndexAny(t.s, " \t\r\n\f\v")
			if i < 0 {
				i = len(t.s)
			}
			w := t.s[:i]
			t.s = t.s[i:]
			return w, nil
		}
	}
	return "", io.EOF
}

// quoted reads a word in double quotes.
func (t *netrcTokens) quoted() (string, error) {
	var b strings.Builder
	for i := 1; i < len(t.s); i++ {
		c := t.s[i]
		switch c {
		case '"':
			t.s = t.s[i+1:]
			return b.String(), nil
		case '\n':
			return "", t.errorf("a quoted word does not end on its line (a missing \")")
		case '\\':
			if i+1 < len(t.s) {
				i++
				switch t.s[i] {
				case 'n':
					c = '\n'
				case 'r':
					c = '\r'
				case 't':
					c = '\t'
				default:
					c = t.s[i]
				}
			}
		}
		b.WriteByte(c)
	}
	return "", t.errorf("a quoted word does not end (a missing \")")
}

// value returns the word after the keyword kw.
func (t *netrcTokens) value(kw string) (string, error) {
	v, err := t.next()
	if errors.Is(err, io.EOF) {
		return "", t.errorf("%q has no value at the end of the file", kw)
	}
	return v, err
}

// skipMacro skips the body of a macdef: the lines after it up to an empty
// line.
func (t *netrcTokens) skipMacro() {
	if i := strings.IndexByte(t.s, '\n'); i >= 0 {
		t.s = t.s[i+1:]
		t.line++
	} else {
		t.s = ""
	}
	t.bol = true
	for len(t.s) > 0 {
		i := strings.IndexByte(t.s, '\n')
		if i < 0 {
			t.s = ""
			return
		}
		line := strings.TrimRight(t.s[:i], "\r")
		t.s = t.s[i+1:]
		t.line++
		if line == "" {
			return
		}
	}
}
