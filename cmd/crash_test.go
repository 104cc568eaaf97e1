package cmd_test

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/fetchtest"
	"github.com/ck-tools/ck/lib/outname"
)

var (
	crashSeed   = flag.Uint64("crash.seed", 0, "seed of TestCrashResume (0: from the clock)")
	crashRounds = flag.Int("crash.rounds", 20, "kill rounds of TestCrashResume")
)

// crashURL is one line of the crash test's list.
type crashURL struct {
	line       string
	name       string
	size       int64
	fails      bool // never succeeds: must end in the failure file
	versions   bool // etag=changing: the file is one whole version, any of them
	outputPath string
}

// TestCrashResume is the central property of ck (SPEC.md I1-I3): the used-by
// pipeline, as real processes joined by real pipes, is killed with SIGKILL
// (the whole process group) at random moments, then run once more to its
// end. After every kill, each complete checkpoint line names a complete file
// with the server's exact bytes (I1). At the end every URL is downloaded with
// exact bytes or listed in the failure file, no final name holds a partial
// file and the checkpoint has only whole lines (I2), and the server sent less
// than twice the total size (I3).
func TestCrashResume(t *testing.T) {
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rounds := *crashRounds
	if testing.Short() {
		rounds = 4
	}
	t.Logf("seed %d (rerun with -crash.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	srv := fetchtest.New()
	defer srv.Close()
	dir := t.TempDir()
	list, kinds := crashList(t, rng, srv.URL)
	defer checkKinds(t, kinds, crashLines)
	var total int64
	var urls bytes.Buffer
	for _, u := range list {
		urls.WriteString(u.line + "\n")
		total += u.size
	}
	write(t, filepath.Join(dir, "urls.txt"), urls.String())

	pipeline := "ckskip -c check.txt urls.txt | ckfetch -q -j 4 --per-host 4 --backoff 5ms --max-backoff 50ms " +
		"--stall-timeout 500ms -d out --failed failed.txt | ckmark check.txt"
	for round := range rounds {
		cmd := exec.Command("sh", "-c", pipeline)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Long enough for the processes to start and make progress, short
		// enough to land in the middle of the work.
		time.Sleep(time.Duration(200+rng.IntN(1300)) * time.Millisecond)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		checkI1(t, dir, list, fmt.Sprintf("after kill %d (seed %d)", round+1, seed))
		check, _ := os.ReadFile(filepath.Join(dir, "check.txt"))
		t.Logf("kill %d: %d checkpoint lines, %d bytes served so far", round+1, bytes.Count(check, []byte("\n")), srv.BytesSent())
	}

	cmd := exec.Command("sh", "-c", pipeline)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil && !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("final run (seed %d): %v\n%s", seed, err, out)
	}
	checkI1(t, dir, list, fmt.Sprintf("after the final run (seed %d)", seed))
	checkI2(t, dir, list, seed)
	t.Logf("the server sent %d bytes for %d bytes of files", srv.BytesSent(), total)
	if sent := srv.BytesSent(); sent >= 2*total {
		t.Errorf("I3 (seed %d): the server sent %d bytes for %d bytes of files; want less than twice", seed, sent, total)
	}
}

// crashKind is one kind of URL of the crash test's list. Adding a kind is
// adding an entry to crashKinds.
type crashKind struct {
	name   string
	weight int  // its share of the list, out of the sum of all weights
	fails  bool // the URL never succeeds: it must end in the failure file
	// versions: the server changes the body on every request (etag=changing),
	// so the file must be one whole version, whichever.
	versions bool
	// url returns the size of the file and the path and query of a URL of
	// this kind for the file NAME; the file must end with exactly
	// fetchtest.Body(NAME, size).
	url func(rng *rand.Rand, name string) (size int64, pathQuery string)
}

// crashKinds are the kinds of URL the crash test draws from.
var crashKinds = []crashKind{
	{name: "plain", weight: 31, url: func(rng *rand.Rand, name string) (int64, string) {
		return fileURL(name, int64(rng.IntN(20_000)), "")
	}},
	{name: "slow", weight: 12, url: func(rng *rand.Rand, name string) (int64, string) {
		return fileURL(name, 200_000+int64(rng.IntN(300_000)), "&slow=1000000")
	}},
	{name: "reset", weight: 6, url: func(rng *rand.Rand, name string) (int64, string) {
		return fileURL(name, 200_000, fmt.Sprintf("&reset=%d", rng.IntN(150_000)+1))
	}},
	{name: "503-then-ok", weight: 6, url: func(rng *rand.Rand, name string) (int64, string) {
		return fileURL(name, int64(rng.IntN(20_000)), "&fail=2")
	}},
	{name: "stall", weight: 3, url: func(rng *rand.Rand, name string) (int64, string) {
		return fileURL(name, 100_000, "&stall=50000&stalldur=2s")
	}},
	// Servers that lie (issue 7): a 206 shorter than asked, a 206 of a new
	// version despite If-Range, a Last-Modified too recent to resume on.
	{name: "short-206", weight: 4, url: func(rng *rand.Rand, name string) (int64, string) {
		return fileURL(name, 200_000, fmt.Sprintf("&reset=%d&short206=%d", rng.IntN(100_000)+1, 20_000+rng.IntN(30_000)))
	}},
	{name: "206-ignores-if-range", weight: 4, versions: true, url: func(rng *rand.Rand, name string) (int64, string) {
		return fileURL(name, 200_000, fmt.Sprintf("&reset=%d&etag=changing&ignoreifrange=1&slow=2000000", rng.IntN(150_000)+1))
	}},
	{name: "weak-last-modified", weight: 3, url: func(rng *rand.Rand, name string) (int64, string) {
		return fileURL(name, 200_000, fmt.Sprintf("&reset=%d&weaklastmod=1", rng.IntN(150_000)+1))
	}},
	{name: "404", weight: 2, fails: true, url: func(rng *rand.Rand, name string) (int64, string) {
		return 0, "/status/404?tag=" + name
	}},
}

// maxVersions bounds the versions whole tries for an etag=changing URL: the
// server makes one per request, and a URL gets far fewer requests than this.
const maxVersions = 200

// whole reports whether got is exactly the server's body for u: for an
// etag=changing URL, exactly one of its versions (never two glued together).
func (u crashURL) whole(got []byte) bool {
	if !u.versions {
		return bytes.Equal(got, fetchtest.Body(u.name, u.size))
	}
	if int64(len(got)) != u.size {
		return false
	}
	for v := 1; v <= maxVersions; v++ {
		if bytes.Equal(got, fetchtest.BodyVersion(u.name, v, u.size)) {
			return true
		}
	}
	return false
}

// fileURL is the path and query of fetchtest's file NAME of size bytes, with
// more options.
func fileURL(name string, size int64, opts string) (int64, string) {
	return size, fmt.Sprintf("/f/%s?size=%d%s", name, size, opts)
}

// crashLines is how many URLs crashList draws.
const crashLines = 300

// crashList makes crashLines URLs of the kinds of crashKinds, drawn by weight, a few
// of them twice, and returns how many of each kind it made.
func crashList(t *testing.T, rng *rand.Rand, base string) ([]crashURL, map[string]int) {
	total := 0
	for _, k := range crashKinds {
		total += k.weight
	}
	counts := map[string]int{}
	var list []crashURL
	for i := range crashLines {
		draw, kind := rng.IntN(total), crashKinds[0]
		for _, k := range crashKinds {
			if draw < k.weight {
				kind = k
				break
			}
			draw -= k.weight
		}
		counts[kind.name]++
		name := fmt.Sprintf("n%d", i)
		size, pathQuery := kind.url(rng, name)
		u := crashURL{name: name, size: size, fails: kind.fails, versions: kind.versions, line: base + pathQuery}
		p, err := outname.FromURL(u.line)
		if err != nil {
			t.Fatal(err)
		}
		u.outputPath = filepath.Join("out", p)
		list = append(list, u)
		if rng.IntN(40) == 0 && !u.fails {
			list = append(list, u) // duplicate lines resume at the right occurrence
		}
	}
	return list, counts
}

// checkKinds logs how many URLs of each kind the list has, and fails the
// test if a kind that a list of n draws should hold at least ten times is
// missing (by chance that happens less than once in 20,000 runs).
func checkKinds(t *testing.T, counts map[string]int, n int) {
	t.Helper()
	total := 0
	for _, k := range crashKinds {
		total += k.weight
	}
	var got []string
	for _, k := range crashKinds {
		got = append(got, fmt.Sprintf("%s %d", k.name, counts[k.name]))
		if expected := float64(n) * float64(k.weight) / float64(total); counts[k.name] == 0 && expected >= 10 {
			t.Errorf("the list has no %s URL, where %.0f were expected: that kind is never injected", k.name, expected)
		}
	}
	t.Logf("URLs injected by kind: %s", strings.Join(got, ", "))
}

func checkI1(t *testing.T, dir string, list []crashURL, when string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "check.txt"))
	if err != nil {
		if os.IsNotExist(err) {
			return
		}
		t.Fatal(err)
	}
	byLine := map[string]crashURL{}
	for _, u := range list {
		byLine[u.line] = u
	}
	complete := data[:bytes.LastIndexByte(data, '\n')+1]
	for i, line := range strings.Split(strings.TrimSuffix(string(complete), "\n"), "\n") {
		if line == "" {
			continue
		}
		u, ok := byLine[line]
		switch {
		case !ok:
			t.Fatalf("I1 %s: check.txt:%d: %q is not a line of the list", when, i+1, line)
		case u.fails:
			t.Fatalf("I1 %s: check.txt:%d: %q failed but was recorded as done", when, i+1, line)
		default:
			if got := read(t, filepath.Join(dir, u.outputPath)); !u.whole(got) {
				t.Fatalf("I1 %s: check.txt:%d: %s has %d bytes, not the server's %d", when, i+1, u.outputPath, len(got), u.size)
			}
		}
	}
}

func checkI2(t *testing.T, dir string, list []crashURL, seed uint64) {
	t.Helper()
	failed := read(t, filepath.Join(dir, "failed.txt"))
	for _, u := range list {
		if u.fails {
			if !bytes.Contains(failed, []byte("\n"+u.line+"\n")) {
				t.Errorf("I2 (seed %d): %s failed but is not in the failure file", seed, u.line)
			}
			continue
		}
		if got, err := os.ReadFile(filepath.Join(dir, u.outputPath)); err != nil || !u.whole(got) {
			t.Errorf("I2 (seed %d): %s: %d bytes (%v), want the server's %d", seed, u.outputPath, len(got), err, u.size)
		}
	}
	check := read(t, filepath.Join(dir, "check.txt"))
	if len(check) > 0 && check[len(check)-1] != '\n' {
		t.Errorf("I2 (seed %d): check.txt ends in a torn line", seed)
	}
	// Every final name holds a whole file: the only other files are .part files.
	filepath.WalkDir(filepath.Join(dir, "out"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(d.Name(), ".part") {
			t.Errorf("I2 (seed %d): %s is left after a complete run", seed, p)
		}
		return nil
	})
	// The checkpoint ends with the last line of the list that can succeed:
	// nothing is left to do (failed lines are settled by the failure file).
	last := ""
	for _, u := range list {
		if !u.fails {
			last = u.line
		}
	}
	lines := strings.Split(strings.TrimSpace(string(check)), "\n")
	if lines[len(lines)-1] != last {
		t.Errorf("I2 (seed %d): the checkpoint ends at %q, not at the last line %q", seed, lines[len(lines)-1], last)
	}
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return b
}

func write(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o666); err != nil {
		t.Fatal(err)
	}
}
