package main

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// The sampler finds every process of a group, children included, and sums
// their descriptors and threads.
func TestSamplerSumsTheGroup(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	// Three processes (sh and two sleeps), each holding descriptor 7 open.
	cmd := exec.Command(sh, "-c", "exec 7</dev/null; sleep 5 & sleep 5 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}()
	s := &sampler{self: os.Getpid(), pgrp: cmd.Process.Pid, known: map[int]bool{}}
	for i := 0; i < 200 && s.peakProcs < 3; i++ { // bounded: at most 200 scans
		s.scan()
		time.Sleep(10 * time.Millisecond)
	}
	if s.peakProcs != 3 {
		t.Fatalf("peak processes %d, want 3 (sh and two sleeps)", s.peakProcs)
	}
	if s.peakFDs < 3*4 || s.peakThreads < 3 || s.peakRSS <= 0 {
		t.Errorf("peaks: %d descriptors, %d threads, %d pages; want at least 12 (0, 1, 2 and 7 each), 3 and some", s.peakFDs, s.peakThreads, s.peakRSS)
	}
}

func TestReadStatSelf(t *testing.T) {
	pgrp, threads, rss, ok := readStat(os.Getpid())
	if !ok || pgrp != int64(syscall.Getpgrp()) || threads < 1 || rss <= 0 {
		t.Errorf("readStat(self) = pgrp %d, %d threads, %d pages, %v; want pgrp %d, ≥ 1, > 0, true", pgrp, threads, rss, ok, syscall.Getpgrp())
	}
}
