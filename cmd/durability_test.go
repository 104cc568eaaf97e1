package cmd_test

// The durability order of SPEC.md, seen in the system calls of the real
// tools: ckfetch and ckmark run under strace, and the trace shows, for every
// line they print, that what the line promises was fsynced before the line
// was written.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/fetchtest"
	"github.com/ck-tools/ck/lib/outname"
)

// traced are the system calls the durability tests look at; "?" keeps strace
// quiet about the ones an architecture does not have (mkdir and rename are
// not on arm64).
const traced = "trace=fsync,fdatasync,write,pwrite64,writev,pwritev,pwritev2,mkdirat,?mkdir,renameat,renameat2,?rename,linkat,exit_group"

var (
	straceOnce sync.Once
	stracePath string
	straceWhy  string // why there is no usable strace
)

// needStrace returns the path of a strace that can trace this test's
// children. When strace is missing it installs it with apt-get (as root);
// when it still cannot trace, the test is skipped with a message that says
// the durability order was not checked.
func needStrace(t *testing.T) string {
	t.Helper()
	straceOnce.Do(func() {
		path, err := exec.LookPath("strace")
		if err != nil {
			path, straceWhy = installStrace()
			if path == "" {
				return
			}
		}
		// ptrace may be forbidden (a container without CAP_SYS_PTRACE).
		if out, err := exec.Command(path, "-f", "-o", os.DevNull, "true").CombinedOutput(); err != nil {
			straceWhy = fmt.Sprintf("%s cannot trace here: %v: %s", path, err, bytes.TrimSpace(out))
			return
		}
		stracePath = path
	})
	if stracePath == "" {
		t.Skipf("SKIPPED, THE DURABILITY ORDER IS NOT TESTED: %s", straceWhy)
	}
	return stracePath
}

// installStrace installs strace with apt-get and returns its path, or "" and
// why not.
func installStrace() (path, why string) {
	if os.Geteuid() != 0 {
		return "", "strace is not installed and the test is not root, so it cannot apt-get install it (install strace)"
	}
	aptGet, err := exec.LookPath("apt-get")
	if err != nil {
		return "", "strace is not installed and there is no apt-get to install it with (install strace)"
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{{"update"}, {"install", "-y", "--no-install-recommends", "strace"}} {
		cmd := exec.Command(aptGet, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Sprintf("strace is not installed and apt-get %s failed: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	path, err = exec.LookPath("strace")
	if err != nil {
		return "", "apt-get installed strace but it is not on PATH: " + err.Error()
	}
	return path, ""
}

// sysCall is one system call of a trace. start and end are the numbers of
// the trace lines where it began and returned: strace stops a thread at
// each, so a call whose end comes before another's start returned before
// the other was made.
type sysCall struct {
	name       string
	args       []string // as strace printed them
	ret        string
	start, end int
	text       string // the whole call, for messages
}

// ok reports whether the call succeeded.
func (c *sysCall) ok() bool { return c.ret != "?" && !strings.HasPrefix(c.ret, "-") }

// before reports whether c returned before d began.
func (c *sysCall) before(d *sysCall) bool { return c.end < d.start }

// trace is a parsed strace -f -tt -xx -y output.
type trace struct {
	calls []*sysCall
	cwd   string // the traced process's working directory, for relative paths
}

var (
	traceLine = regexp.MustCompile(`^(?:(\d+) +)?(\d\d:\d\d:\d\d\.\d+) (.*)$`)
	resumed   = regexp.MustCompile(`^<\.\.\. (\w+) resumed>(.*)$`)
	callStart = regexp.MustCompile(`^(\w+)\((.*)$`)
	retSep    = regexp.MustCompile(`\) += `)
	fdArg     = regexp.MustCompile(`^(-?\d+|AT_FDCWD)<(.*)>(?:\(deleted\))?$`) // deleted: an O_TMPFILE
)

// parseTrace reads a strace -o file.
func parseTrace(t *testing.T, name, cwd string) *trace {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	tr := &trace{cwd: cwd}
	pending := map[string]*sysCall{} // pid: a call printed as <unfinished ...>
	for i, line := range strings.Split(string(data), "\n") {
		m := traceLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		pid, rest := m[1], m[3]
		var c *sysCall
		if r := resumed.FindStringSubmatch(rest); r != nil {
			c = pending[pid]
			if c == nil || c.name != r[1] {
				t.Fatalf("%s:%d: %q resumes no call of process %s", name, i+1, line, pid)
			}
			delete(pending, pid)
			c.text += r[2]
		} else if s := callStart.FindStringSubmatch(rest); s != nil {
			c = &sysCall{name: s[1], start: i, text: rest}
			if text, ok := strings.CutSuffix(rest, " <unfinished ...>"); ok {
				c.text = text
				pending[pid] = c
				continue
			}
		} else {
			continue // signals and exits
		}
		c.end = i
		// With -xx every byte of a string or a path is a \x escape, so
		// the last ") = " (padded with spaces) ends the arguments.
		seps := retSep.FindAllStringIndex(c.text, -1)
		if len(seps) == 0 {
			t.Fatalf("%s:%d: cannot parse %q", name, i+1, c.text)
		}
		sep := seps[len(seps)-1]
		c.args = splitArgs(c.text[len(c.name)+1 : sep[0]])
		c.ret = strings.Fields(c.text[sep[1]:])[0]
		tr.calls = append(tr.calls, c)
	}
	for pid, c := range pending {
		if c.name != "exit_group" {
			t.Fatalf("%s: process %s's %s never returned in the trace", name, pid, c.text)
		}
	}
	return tr
}

// splitArgs splits strace's argument list at its top-level commas.
func splitArgs(s string) []string {
	var args []string
	depth, quoted, from := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '(' || c == '[' || c == '{' || c == '<':
			depth++
		case c == ')' || c == ']' || c == '}' || c == '>':
			depth--
		case c == ',' && depth == 0:
			args = append(args, strings.TrimSpace(s[from:i]))
			from = i + 1
		}
	}
	if rest := strings.TrimSpace(s[from:]); rest != "" {
		args = append(args, rest)
	}
	return args
}

// unquote decodes strace's escapes (\xNN, \NNN, \n and the like).
func unquote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch c := s[i]; c {
		case 'x':
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'v':
			b.WriteByte('\v')
		case 'f':
			b.WriteByte('\f')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			j := i
			for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
				j++
			}
			v, _ := strconv.ParseUint(s[i:j], 8, 8)
			b.WriteByte(byte(v))
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// fd returns the descriptor number and path of a -y argument such as
// 3</dir/file>; ok is false for anything else.
func fd(arg string) (n, path string, ok bool) {
	m := fdArg.FindStringSubmatch(arg)
	if m == nil {
		return "", "", false
	}
	return m[1], unquote(m[2]), true
}

// str returns the bytes of a quoted string argument.
func str(arg string) (string, bool) {
	if !strings.HasPrefix(arg, `"`) {
		return "", false
	}
	arg = strings.TrimSuffix(arg, "...") // cut by -s
	return unquote(strings.TrimSuffix(arg[1:], `"`)), true
}

// pathArg returns the absolute path a (dirfd, path) pair of arguments names.
func (tr *trace) pathArg(c *sysCall, dirArg, pathArg int) string {
	p, _ := str(c.args[pathArg])
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	dir := tr.cwd
	if dirArg >= 0 {
		if _, d, ok := fd(c.args[dirArg]); ok {
			dir = d
		}
	}
	return filepath.Join(dir, p)
}

// fdPath returns the path of the descriptor that is c's first argument.
func fdPath(c *sysCall) string {
	if len(c.args) == 0 {
		return ""
	}
	_, p, _ := fd(c.args[0])
	return p
}

// isSync reports whether c is a successful fsync or fdatasync of path.
func isSync(c *sysCall, path string) bool {
	return (c.name == "fsync" || c.name == "fdatasync") && c.ok() && fdPath(c) == path
}

// isWrite reports whether c writes to a descriptor.
func isWrite(c *sysCall) bool {
	switch c.name {
	case "write", "pwrite64", "writev", "pwritev", "pwritev2":
		return true
	}
	return false
}

// renames returns the successful renames, by new path, with their old path,
// and the links that gave an unnamed file (O_TMPFILE) its name, with the
// path strace showed for its descriptor (DIR/#INODE) as the old path:
// linkat(N, "", AT_FDCWD, NEW, AT_EMPTY_PATH), or
// linkat(AT_FDCWD, "/proc/self/fd/N", AT_FDCWD, NEW, AT_SYMLINK_FOLLOW).
func (tr *trace) renames() map[string][]renameCall {
	out := map[string][]renameCall{}
	fds := map[string]string{} // descriptor: its path in the last call that used it
	for _, c := range tr.calls {
		if len(c.args) > 0 {
			if n, p, ok := fd(c.args[0]); ok {
				fds[n] = p
			}
		}
		if !c.ok() {
			continue
		}
		var from, to string
		switch c.name {
		case "rename":
			from, to = tr.pathArg(c, -1, 0), tr.pathArg(c, -1, 1)
		case "renameat", "renameat2":
			from, to = tr.pathArg(c, 0, 1), tr.pathArg(c, 2, 3)
		case "linkat":
			if p, _ := str(c.args[1]); p == "" { // AT_EMPTY_PATH: the descriptor's own file
				from, to = fdPath(c), tr.pathArg(c, 2, 3)
				break
			}
			from, to = tr.pathArg(c, 0, 1), tr.pathArg(c, 2, 3)
			n, ok := strings.CutPrefix(from, "/proc/self/fd/")
			if !ok {
				continue // a link of a named file: not a naming
			}
			from = fds[n]
		default:
			continue
		}
		out[to] = append(out[to], renameCall{c, from})
	}
	return out
}

// unnamed reports whether path is one strace shows for an O_TMPFILE:
// DIR/#INODE.
func unnamed(path string) bool {
	return strings.HasPrefix(filepath.Base(path), "#")
}

type renameCall struct {
	*sysCall
	from string
}

// mkdirs returns the directories the traced processes created.
func (tr *trace) mkdirs() map[string]*sysCall {
	out := map[string]*sysCall{}
	for _, c := range tr.calls {
		switch {
		case !c.ok():
		case c.name == "mkdir":
			out[tr.pathArg(c, -1, 0)] = c
		case c.name == "mkdirat":
			out[tr.pathArg(c, 0, 1)] = c
		}
	}
	return out
}

// echoed is one line a tool wrote to its stdout and the write that began it.
type echoed struct {
	line  string
	write *sysCall
}

// stdout returns the lines the traced processes wrote to descriptor 1, each
// with the write that began it, and the whole text.
func (tr *trace) stdout(t *testing.T) ([]echoed, string) {
	t.Helper()
	var all, line strings.Builder
	var lines []echoed
	var first *sysCall // the write that began the current line
	for _, c := range tr.calls {
		if n, _, _ := fd(c.args[0]); !isWrite(c) || !c.ok() || n != "1" {
			continue
		}
		for _, b := range []byte(written(t, c)) {
			all.WriteByte(b)
			if first == nil {
				first = c
			}
			if b != '\n' {
				line.WriteByte(b)
				continue
			}
			lines = append(lines, echoed{line.String(), first})
			line.Reset()
			first = nil
		}
	}
	return lines, all.String()
}

// written returns the bytes a successful write(2) wrote.
func written(t *testing.T, c *sysCall) string {
	t.Helper()
	if c.name != "write" {
		t.Fatalf("the test parses the data of write(2) only, not of %s", c.text)
	}
	data, _ := str(c.args[1])
	count, err := strconv.Atoi(c.ret)
	if err != nil || count > len(data) {
		t.Fatalf("cannot parse the data of %s (strace -s too small?)", c.text)
	}
	return data[:count]
}

// runTraced runs tool with args in dir under strace, with stdin, and returns
// its stdout and the parsed trace. feed, if not nil, runs once the tool has
// started.
func runTraced(t *testing.T, dir string, stdin *os.File, feed func(), tool string, args ...string) (string, *trace) {
	t.Helper()
	return runTracedCalls(t, traced, dir, stdin, feed, tool, args...)
}

// runTracedCalls is runTraced for the system calls of the strace filter
// calls (-e calls).
func runTracedCalls(t *testing.T, calls, dir string, stdin *os.File, feed func(), tool string, args ...string) (string, *trace) {
	t.Helper()
	strace := needStrace(t)
	out := filepath.Join(t.TempDir(), "strace.txt")
	cmd := exec.Command(strace, append([]string{"-f", "-tt", "-xx", "-y", "-s", "4096", "-o", out, "-e", calls, tool}, args...)...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Start()
	if err == nil && feed != nil {
		feed()
	}
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		t.Fatalf("strace %s %q: %v\nstderr:\n%s", tool, args, err, stderr.String())
	}
	tr := parseTrace(t, out, dir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the system calls of %s %q that the test looked at:\n%s", tool, args, tr)
		}
	})
	return stdout.String(), tr
}

// String lists the calls of tr with their trace line numbers, decoded and
// with long data cut.
func (tr *trace) String() string {
	var b strings.Builder
	for _, c := range tr.calls {
		args := make([]string, len(c.args))
		for i, a := range c.args {
			if n, p, ok := fd(a); ok {
				a = n + "<" + p + ">"
			} else if s, ok := str(a); ok {
				a = strconv.QuoteToASCII(s)
				if len(a) > 80 {
					a = a[:80] + "..."
				}
			}
			args[i] = a
		}
		fmt.Fprintf(&b, "%d-%d %s(%s) = %s\n", c.start+1, c.end+1, c.name, strings.Join(args, ", "), c.ret)
	}
	return b.String()
}

// realTempDir is a t.TempDir without symbolic links in its path, so that
// paths built from it compare equal to the ones strace -y prints.
func realTempDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDurabilityOrderFetch: for every line ckfetch echoes, the trace of its
// system calls shows the order of SPEC.md: the .part file is fsynced after
// its last write, then renamed to the final name (or, for a small file
// whose .part has no name, an O_TMPFILE, linked to it), then the final
// name's directory is fsynced, and every directory ckfetch created on the way
// (the -d directory, the host directories, the directories of an explicit
// PATH) is fsynced into its parent, all before the line is written to
// stdout. Two hosts (127.0.0.1 and 127.0.0.2), a retried URL and an
// explicit PATH in new subdirectories. A rerun then finds every file there,
// and echoes each line only after an fsync of its directory.
func TestDurabilityOrderFetch(t *testing.T) {
	needStrace(t)
	srv1 := fetchtest.New()
	t.Cleanup(srv1.Close)
	srv2, err := fetchtest.Listen("127.0.0.2:0")
	if err != nil {
		t.Fatalf("a server on 127.0.0.2: %v", err)
	}
	t.Cleanup(srv2.Close)

	dir := realTempDir(t)
	outDir := filepath.Join(dir, "out")
	type item struct{ line, path string }
	var items []item
	add := func(u, explicit string) {
		var p string
		if explicit != "" {
			p = filepath.Join(outDir, explicit)
			items = append(items, item{u + "\t" + explicit, p})
			return
		}
		name, err := outname.FromURL(u)
		if err != nil {
			t.Fatal(err)
		}
		p = filepath.Join(outDir, filepath.FromSlash(name))
		items = append(items, item{u, p})
	}
	add(srv1.URL+"/f/a?size=3000", "")
	add(srv1.URL+"/f/b?size=70000", "") // several writes into its .part
	add(srv2.URL+"/f/c?size=100", "")
	add(srv2.URL+"/f/d?size=5000&fail=1", "") // a 503, then the file
	add(srv1.URL+"/f/e?size=2000", filepath.Join("sub", "deeper", "e.bin"))
	add(srv2.URL+"/f/f?size=0", "")
	var input strings.Builder
	for _, it := range items {
		input.WriteString(it.line + "\n")
	}
	stdin := tempInput(t, input.String())

	stdout, tr := runTraced(t, dir, stdin, nil, "ckfetch", "-q", "-j", "3", "--per-host", "2", "--backoff", "5ms", "-d", outDir)
	echoes, _ := tr.stdout(t)
	if stdout != input.String() || len(echoes) != len(items) {
		t.Fatalf("ckfetch echoed %q (%d lines in the trace); want every line %q", stdout, len(echoes), input.String())
	}
	for i, it := range items {
		if got := echoes[i].line; got != it.line {
			t.Fatalf("echoed line %d in the trace is %q; want %q", i+1, got, it.line)
		}
	}
	renames, made := tr.renames(), tr.mkdirs()

	t.Run("part-synced-renamed-dir-synced", func(t *testing.T) {
		kinds := map[string]int{} // how the final names were made
		for _, rs := range renames {
			for _, r := range rs {
				kinds[r.name]++
			}
		}
		if kinds["linkat"] == 0 || kinds["linkat"] == len(renames) {
			t.Errorf("final names made by %v; want both ways tested: linkat for the small files, a rename for %s", kinds, items[1].line)
		}
		for i, it := range items {
			echo := echoes[i].write
			rs := renames[it.path]
			if len(rs) != 1 {
				t.Errorf("%s: %d renames to its final name %s; want 1", it.line, len(rs), it.path)
				continue
			}
			r := rs[0]
			switch {
			case r.name == "linkat" && (!unnamed(r.from) || filepath.Dir(r.from) != filepath.Dir(it.path)):
				t.Errorf("%s: linked from %s, not an unnamed file in %s", it.line, r.from, filepath.Dir(it.path))
			case r.name != "linkat" && !strings.Contains(filepath.Base(r.from), outname.PartSuffix):
				t.Errorf("%s: renamed from %s, not a %s file", it.line, r.from, outname.PartSuffix)
			}
			// The last fsync of the .part before the rename, and the last
			// write into it.
			var sync, lastWrite *sysCall
			for _, c := range tr.calls {
				switch {
				case c.start > r.start:
				case isSync(c, r.from) && c.before(r.sysCall):
					sync = c
				case isWrite(c) && fdPath(c) == r.from:
					lastWrite = c
				}
			}
			switch {
			case sync == nil:
				t.Errorf("%s: %s was renamed to its final name (trace line %d) without an fsync of it before", it.line, r.from, r.start+1)
			case lastWrite != nil && !lastWrite.before(sync):
				t.Errorf("%s: the last write into %s (trace line %d) is not before its last fsync (line %d) before the rename", it.line, r.from, lastWrite.start+1, sync.start+1)
			}
			if !r.before(echo) {
				t.Errorf("%s: echoed (trace line %d) before its rename returned (line %d)", it.line, echo.start+1, r.end+1)
			}
			if c := syncBetween(tr, filepath.Dir(it.path), r.sysCall, echo); c == nil {
				t.Errorf("%s: no fsync of its directory %s after the rename (trace line %d) and before the echo (line %d)", it.line, filepath.Dir(it.path), r.end+1, echo.start+1)
			}
		}
	})

	t.Run("new-dirs-synced", func(t *testing.T) {
		if len(made) == 0 {
			t.Fatalf("the trace shows no directory created by ckfetch; want at least %s", outDir)
		}
		for i, it := range items {
			echo := echoes[i].write
			for d := filepath.Dir(it.path); d != filepath.Dir(d); d = filepath.Dir(d) {
				mk := made[d]
				if mk == nil {
					continue
				}
				if c := syncBetween(tr, filepath.Dir(d), mk, echo); c == nil {
					t.Errorf("%s: ckfetch created %s (trace line %d) but did not fsync %s after it and before the echo (line %d)", it.line, d, mk.end+1, filepath.Dir(d), echo.start+1)
				}
			}
		}
	})

	// The same list again: every file is there, and each line is echoed
	// only after its directory was fsynced by this run (the run before
	// may have been killed between its rename and that fsync).
	t.Run("exists-dir-synced", func(t *testing.T) {
		stdout, tr := runTraced(t, dir, tempInput(t, input.String()), nil, "ckfetch", "-q", "-d", outDir)
		echoes, _ := tr.stdout(t)
		if stdout != input.String() || len(echoes) != len(items) {
			t.Fatalf("the rerun echoed %q (%d lines in the trace); want every line %q", stdout, len(echoes), input.String())
		}
		if rs := tr.renames(); len(rs) != 0 {
			t.Fatalf("the rerun renamed %d files; want none, every file is there", len(rs))
		}
		for i, it := range items {
			echo := echoes[i].write
			if c := syncBetween(tr, filepath.Dir(it.path), traceStart, echo); c == nil {
				t.Errorf("%s: its file was there and is echoed (trace line %d) without an fsync of its directory %s before", it.line, echo.start+1, filepath.Dir(it.path))
			}
		}
	})
}

// traceStart stands for the start of a trace: it returned before any call.
var traceStart = &sysCall{start: -1, end: -1}

// syncBetween returns an fsync of path that began after a returned and
// returned before b began, or nil.
func syncBetween(tr *trace, path string, a, b *sysCall) *sysCall {
	for _, c := range tr.calls {
		if isSync(c, path) && a.before(c) && c.before(b) {
			return c
		}
	}
	return nil
}

// tempInput returns a file holding s, open for reading.
func tempInput(t *testing.T, s string) *os.File {
	t.Helper()
	name := filepath.Join(t.TempDir(), "stdin")
	write(t, name, s)
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestDurabilityOrderMark: ckmark -t writes a line to stdout only after an
// fsync of the checkpoint that began after the line was written to it, and,
// with or without -t, everything it wrote to the checkpoint is fsynced
// before it exits. The input comes in three bursts, so that there are
// several commits.
func TestDurabilityOrderMark(t *testing.T) {
	needStrace(t)
	for _, tee := range []bool{true, false} {
		name := "plain"
		if tee {
			name = "tee"
		}
		t.Run(name, func(t *testing.T) { testDurabilityOrderMark(t, tee) })
	}
}

func testDurabilityOrderMark(t *testing.T, tee bool) {
	dir := realTempDir(t)
	check := filepath.Join(dir, "check.txt")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	feed := func() {
		defer w.Close()
		for burst := range 3 {
			// Longer than --sync-every (and than the start of a traced
			// process, for the first): each burst is a commit of its own.
			time.Sleep(300 * time.Millisecond)
			var b strings.Builder
			for i := range 5 {
				fmt.Fprintf(&b, "line %d.%d\n", burst, i)
			}
			w.WriteString(b.String())
			want.WriteString(b.String())
		}
	}
	args := []string{"--sync-every", "10ms", check}
	wantOut := func() string { return "" }
	if tee {
		args = append([]string{"-t"}, args...)
		wantOut = want.String
	}
	stdout, tr := runTraced(t, dir, r, feed, "ckmark", args...)
	r.Close()
	echoes, _ := tr.stdout(t)
	var text strings.Builder
	for _, c := range tr.calls {
		if isWrite(c) && c.ok() && fdPath(c) == check {
			text.WriteString(written(t, c))
		}
	}
	if stdout != wantOut() || len(echoes) != strings.Count(wantOut(), "\n") {
		t.Fatalf("ckmark %q printed %q (%d lines in the trace); want %q", args, stdout, len(echoes), wantOut())
	}
	if got := string(read(t, check)); got != want.String() || text.String() != got {
		t.Fatalf("check.txt holds %q, and the trace shows %q written to it; want %q", got, text.String(), want.String())
	}

	if tee {
		t.Run("synced-before-echo", func(t *testing.T) {
			for i, e := range echoes {
				wr := recordWrite(t, tr, check, i)
				if wr == nil {
					t.Fatalf("line %d %q: no write of it into %s in the trace", i+1, e.line, check)
				}
				if c := syncBetween(tr, check, wr, e.write); c == nil {
					t.Errorf("line %d %q: printed (trace line %d) without an fsync of %s after it was written there (line %d)", i+1, e.line, e.write.start+1, check, wr.end+1)
				}
			}
		})
	}

	t.Run("synced-before-exit", func(t *testing.T) {
		var exit, lastWrite *sysCall
		for _, c := range tr.calls {
			switch {
			case c.name == "exit_group" && exit == nil:
				exit = c
			case isWrite(c) && fdPath(c) == check:
				lastWrite = c
			}
		}
		if exit == nil || lastWrite == nil {
			t.Fatalf("the trace has no exit_group (%v) or no write into %s (%v)", exit != nil, check, lastWrite != nil)
		}
		if c := syncBetween(tr, check, lastWrite, exit); c == nil {
			t.Errorf("ckmark exited (trace line %d) without an fsync of %s after its last write there (line %d)", exit.start+1, check, lastWrite.end+1)
		}
	})
}

// recordWrite returns the write into the file at path that ended its i-th
// line (counting from 0).
func recordWrite(t *testing.T, tr *trace, path string, i int) *sysCall {
	t.Helper()
	n := 0
	for _, c := range tr.calls {
		if !isWrite(c) || !c.ok() || fdPath(c) != path {
			continue
		}
		n += strings.Count(written(t, c), "\n")
		if n > i {
			return c
		}
	}
	return nil
}

// TestFetchSmallFileCalls: the file calls a small file costs, counted in
// its system calls. 40 files of 3 KB from one host into a new -d: each is
// written to an unnamed file and linked under its name (no lock, no
// rename), and no .part is looked for in the host's directory once this
// run has made it (at most one failed open of a .part per download slot,
// before the directory exists). A file of 70 KB among them (in a
// directory of its own) still gets a named .part, locked and renamed.
func TestFetchSmallFileCalls(t *testing.T) {
	needStrace(t)
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	dir := realTempDir(t)
	outDir := filepath.Join(dir, "out")
	const small, jobs = 40, 4
	var input strings.Builder
	for i := range small {
		fmt.Fprintf(&input, "%s/f/s%d?size=3000\n", srv.URL, i)
	}
	// In a directory of its own: its named .part makes its directory one
	// where a .part may be, which a small file started after it would then
	// look for (a sixth open, seen 1 run in 10 or so in CI).
	big := srv.URL + "/f/big/f?size=70000"
	input.WriteString(big + "\n")
	const calls = "trace=openat,?open,flock,linkat,renameat,renameat2,?rename"
	stdout, tr := runTracedCalls(t, calls, dir, tempInput(t, input.String()), nil, "ckfetch", "-q", "-j", strconv.Itoa(jobs), "-d", outDir)
	if stdout != input.String() {
		t.Fatalf("ckfetch echoed %q; want every line", stdout)
	}
	count := map[string]int{}
	partOpens := 0
	for _, c := range tr.calls {
		count[c.name]++
		if p := tr.pathArg(c, 0, 1); c.name == "openat" && strings.HasSuffix(p, outname.PartSuffix) && filepath.Dir(p) != outDir { // not the start's probe of -d
			partOpens++
		}
	}
	if got := count["linkat"]; got != small {
		t.Errorf("%d linkat calls; want one per small file, %d", got, small)
	}
	if got := count["flock"]; got != 1 {
		t.Errorf("%d flock calls; want 1, for the large file's .part alone", got)
	}
	if got := count["renameat"] + count["renameat2"] + count["rename"]; got != 1 {
		t.Errorf("%d renames; want 1, the large file's", got)
	}
	// The large file's .part: one failed look before its directory was
	// made, one open to create it; the small ones: at most one failed look
	// per slot before theirs was made.
	if partOpens > jobs+2 {
		t.Errorf("%d opens of .part names for %d files; want at most %d", partOpens, small+1, jobs+2)
	}
	name, _ := outname.FromURL(big)
	if _, err := os.Stat(filepath.Join(outDir, filepath.FromSlash(name))); err != nil {
		t.Errorf("the large file: %v", err)
	}
}

// TestFetchSmallFileOneWrite: a small body goes to its unnamed file in one
// write however many pieces it comes in: 10 files of 3,000 bytes, each sent
// in pieces of 1,000 (fetchtest's slow=20000 writes a twentieth of a
// second's worth at a time), cost 10 writes to files, not 30.
func TestFetchSmallFileOneWrite(t *testing.T) {
	needStrace(t)
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	dir := realTempDir(t)
	const files = 10
	var input strings.Builder
	for i := range files {
		fmt.Fprintf(&input, "%s/f/w%d?size=3000&slow=20000\n", srv.URL, i)
	}
	stdout, tr := runTracedCalls(t, "trace=write,pwrite64,writev", dir, tempInput(t, input.String()), nil, "ckfetch", "-q", "-j", strconv.Itoa(files), "-d", filepath.Join(dir, "out"))
	if stdout != input.String() {
		t.Fatalf("ckfetch echoed %q; want every line", stdout)
	}
	writes := 0
	for _, c := range tr.calls {
		if isWrite(c) && c.ok() && unnamed(fdPath(c)) {
			writes++
		}
	}
	if writes != files {
		t.Errorf("%d writes to unnamed files for %d small files; want one each", writes, files)
	}
}
