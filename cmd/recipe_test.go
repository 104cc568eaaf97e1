package cmd_test

// The README's Kubernetes recipe, run as the pod would run it: its script,
// read from README.md, as PID 1, stopped by SIGTERM.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/fetchtest"
	"github.com/ck-tools/ck/lib/shard"
)

// recipeScript returns the shell script of the README's Kubernetes Job (the
// block under `args: - |`), after checking that the container runs it with
// sh -c in /data, as the test does (in a temporary directory).
func recipeScript(t *testing.T) string {
	t.Helper()
	readme := string(read(t, filepath.Join("..", "README.md")))
	yaml := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(readme, -1)
	for _, m := range yaml {
		block := m[1]
		if !strings.Contains(block, "completionMode: Indexed") {
			continue
		}
		for _, want := range []string{`command: ["sh", "-c"]`, "workingDir: /data"} {
			if !strings.Contains(block, want) {
				t.Fatalf("README's Kubernetes Job has no %q, which this test assumes", want)
			}
		}
		lines := strings.Split(block, "\n")
		for i, l := range lines {
			if strings.TrimSpace(l) != "- |" || i == 0 || strings.TrimSpace(lines[i-1]) != "args:" {
				continue
			}
			indent := len(l) - len(strings.TrimLeft(l, " ")) + 2
			var script strings.Builder
			for _, s := range lines[i+1:] {
				if strings.TrimSpace(s) != "" && len(s)-len(strings.TrimLeft(s, " ")) < indent {
					break
				}
				script.WriteString(strings.TrimPrefix(s, strings.Repeat(" ", indent)) + "\n")
			}
			return script.String()
		}
	}
	t.Fatal("README.md has no Kubernetes Job with an `args: - |` script")
	return ""
}

// startPID1 starts sh -c script in dir as PID 1 of a new PID namespace (as
// root, else in a user namespace too), the leader of its own session and
// process group as a container's init is. Where neither namespace can be
// made it is only the leader of its session, and the test says so.
func startPID1(t *testing.T, dir, script string, stderr *lockedBuffer) *exec.Cmd {
	t.Helper()
	uid, gid := os.Getuid(), os.Getgid()
	attrs := []*syscall.SysProcAttr{
		{Setsid: true, Cloneflags: syscall.CLONE_NEWPID},
		{Setsid: true, Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWUSER,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}},
		{Setsid: true},
	}
	for i, attr := range attrs {
		cmd := exec.Command("sh", "-c", script)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "JOB_COMPLETION_INDEX=0")
		cmd.Stderr = stderr
		cmd.SysProcAttr = attr
		err := cmd.Start()
		if err == nil {
			if i == len(attrs)-1 {
				t.Logf("no PID namespace here: the script runs as an ordinary process, the leader of its session")
			}
			return cmd
		}
		if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOSPC) {
			t.Fatal(err)
		}
	}
	t.Fatal("cannot start sh")
	return nil
}

// TestKubernetesRecipe: SIGTERM to the recipe's PID 1 reaches the tools: it
// ends with ckmark's status 143, ckfetch says it was interrupted, and the
// checkpoint is whole, a true prefix of the shard, each of its lines' files
// complete; the same script then finishes the shard with status 0.
func TestKubernetesRecipe(t *testing.T) {
	t.Parallel()
	script := recipeScript(t)
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	dir := t.TempDir()

	// A list whose shard 0 of 8 has 5 lines, fetched one a second (the
	// recipe's -sleep 1s): the signal comes after the first.
	var list strings.Builder
	var want []string
	for i := 0; len(want) < 5; i++ {
		u := fmt.Sprintf("%s/f/k%d?size=100000", srv.URL, i)
		list.WriteString(u + "\n")
		if shard.Hash([]byte(u))%8 == 0 {
			want = append(want, u)
		}
	}
	write(t, filepath.Join(dir, "urls.txt"), list.String())
	check := filepath.Join(dir, "check-0.txt")

	stderr := &lockedBuffer{}
	cmd := startPID1(t, dir, script, stderr)
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-waited })
	waitFor(t, "the first line in the checkpoint", func() bool { return bytes.Count(read(t, check), []byte("\n")) >= 1 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waited:
	case <-time.After(watchdog): // a failure timeout: the old recipe never stops
		t.Fatalf("the script still runs %s after SIGTERM\nstderr:\n%s", watchdog, stderr)
	}
	if got := how(cmd.ProcessState); got != fmt.Sprintf("exit %d", cli.ExitTerminated) {
		t.Errorf("the script ended with %s after SIGTERM; want exit %d, ckmark's (stderr:\n%s)", got, cli.ExitTerminated, stderr)
	}
	if !strings.Contains(stderr.String(), "ckfetch: interrupted") {
		t.Errorf("ckfetch does not say it was interrupted:\nstderr:\n%s", stderr)
	}
	got := string(read(t, check))
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if !strings.HasSuffix(got, "\n") || len(lines) >= len(want) || strings.Join(lines, "\n") != strings.Join(want[:len(lines)], "\n") {
		t.Fatalf("checkpoint after SIGTERM:\n%s\nwant whole lines, a prefix of the shard's %d, not all of them", got, len(want))
	}
	checkFiles := func(urls []string) {
		t.Helper()
		for _, u := range urls {
			var i, size int64
			fmt.Sscanf(u[len(srv.URL):], "/f/k%d?size=%d", &i, &size)
			if b := read(t, outPath(t, dir, u)); !bytes.Equal(b, fetchtest.Body(fmt.Sprintf("k%d", i), size)) {
				t.Errorf("%s is in the checkpoint, but its file has %d bytes, not the server's %d", u, len(b), size)
			}
		}
	}
	checkFiles(lines)

	// The next pod: the same script goes on to the end of the shard.
	stderr2 := &lockedBuffer{}
	cmd2 := startPID1(t, dir, script, stderr2)
	done := make(chan struct{})
	go func() { cmd2.Wait(); close(done) }()
	t.Cleanup(func() { cmd2.Process.Kill(); <-done })
	select {
	case <-done:
	case <-time.After(watchdog):
		t.Fatalf("the second run still runs after %s\nstderr:\n%s", watchdog, stderr2)
	}
	if got := how(cmd2.ProcessState); got != "exit 0" {
		t.Errorf("the second run ended with %s; want exit 0\nstderr:\n%s", got, stderr2)
	}
	if got := string(read(t, check)); got != strings.Join(want, "\n")+"\n" {
		t.Errorf("checkpoint after the second run:\n%s\nwant the shard's %d lines", got, len(want))
	}
	checkFiles(want)
}
