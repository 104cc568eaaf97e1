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
	fails      bool // a 404: must end in the failure file
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
	list := crashList(t, rng, srv.URL)
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

// crashList makes 300 URLs of mixed sizes and faults, a few of them twice.
func crashList(t *testing.T, rng *rand.Rand, base string) []crashURL {
	var list []crashURL
	for i := range 300 {
		size := int64(rng.IntN(20_000))
		opts := ""
		switch k := rng.IntN(20); {
		case k < 4:
			size, opts = 200_000+int64(rng.IntN(300_000)), "&slow=1000000"
		case k < 4:
			size, opts = 200_000, fmt.Sprintf("&reset=%d", rng.IntN(150_000)+1)
		case k < 6:
			opts = "&fail=2"
		case k < 7:
			size, opts = 100_000, "&stall=50000&stalldur=2s"
		}
		name := fmt.Sprintf("n%d", i)
		u := crashURL{name: name, size: size, line: fmt.Sprintf("%s/f/%s?size=%d%s", base, name, size, opts)}
		if rng.IntN(30) == 0 {
			u = crashURL{name: name, fails: true, line: fmt.Sprintf("%s/status/404?tag=%d", base, i)}
		}
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
	return list
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
			if got := read(t, filepath.Join(dir, u.outputPath)); !bytes.Equal(got, fetchtest.Body(u.name, u.size)) {
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
		if got, err := os.ReadFile(filepath.Join(dir, u.outputPath)); err != nil || !bytes.Equal(got, fetchtest.Body(u.name, u.size)) {
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
