// Command runstat runs a command and reports what it cost, for
// scripts/bench.sh: wall time, CPU, peak RSS, and the peaks of open
// descriptors, threads and processes over the command and every process it
// starts (xargs -P curl is hundreds of processes).
//
// Usage:
//
//	runstat [-o FILE] [-interval 10ms] [-timeout 0] -- CMD [ARGS...]
//
// It writes one line to FILE (default stderr) with these fields, in order,
// separated by spaces:
//
//	wall_s cpu_s maxrss_kib peak_rss_kib peak_fds peak_threads peak_procs status
//
// cpu_s is user+sys of CMD and all the descendants it waited for, and
// maxrss_kib the largest RSS of any one of them, both from wait4 (as GNU
// time's %U+%S and %M). The peaks are sampled from /proc every -interval
// (longer when a scan takes long, so the sampler stays under a fifth of a
// core): the sums over every process in runstat's process group but runstat
// itself. runstat makes itself a process group leader, so that group is CMD
// and its descendants unless one of them starts a group of its own. status
// is CMD's exit status, or 128+N after signal N; runstat exits with it.
// After -timeout (0: none) every process of the group gets SIGTERM, and
// SIGKILL 5 s later.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("runstat", flag.ContinueOnError)
	out := fs.String("o", "", "write the result line here (default: stderr)")
	interval := fs.Duration("interval", 10*time.Millisecond, "sampling interval")
	timeout := fs.Duration("timeout", 0, "stop the command after this long (0: never)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if fs.NArg() == 0 || *interval <= 0 {
		fmt.Fprintln(os.Stderr, "usage: runstat [-o FILE] [-interval D] [-timeout D] -- CMD [ARGS...]")
		return 2
	}
	if syscall.Getpgrp() != os.Getpid() {
		if err := syscall.Setpgid(0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "runstat: setpgid:", err)
			return 2
		}
	}
	// Signals for the group (the bench's cleanup kills it whole) reach the
	// command directly; runstat waits for it and reports. They are caught,
	// not ignored, so that the command starts with them at their defaults.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		for range sigs {
		}
	}()

	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "runstat:", err)
		return 127
	}
	s := &sampler{self: os.Getpid(), pgrp: syscall.Getpgrp(), known: map[int]bool{}}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.loop(*interval, done)
	}()
	if *timeout > 0 {
		t := time.AfterFunc(*timeout, func() {
			fmt.Fprintf(os.Stderr, "runstat: -timeout %v reached: stopping %s\n", *timeout, fs.Arg(0))
			s.signalAll(cmd.Process.Pid, syscall.SIGTERM)
			time.AfterFunc(5*time.Second, func() { s.signalAll(cmd.Process.Pid, syscall.SIGKILL) })
		})
		defer t.Stop()
	}
	err := cmd.Wait()
	wall := time.Since(t0)
	close(done)
	wg.Wait()

	status := 0
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintln(os.Stderr, "runstat:", err)
		return 2
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled():
		status = 128 + int(ws.Signal())
	default:
		status = ws.ExitStatus()
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	line := fmt.Sprintf("%.4f %.3f %d %d %d %d %d %d\n", wall.Seconds(), cpu.Seconds(), ru.Maxrss,
		s.peakRSS*int64(os.Getpagesize())/1024, s.peakFDs, s.peakThreads, s.peakProcs, status)
	if *out == "" {
		os.Stderr.WriteString(line)
	} else if err := os.WriteFile(*out, []byte(line), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "runstat:", err)
		return 2
	}
	return status
}

// sampler scans /proc for the processes of one process group.
type sampler struct {
	self, pgrp int
	known      map[int]bool // pid -> member of the group, as first seen

	mu                                       sync.Mutex
	members                                  []int
	peakFDs, peakThreads, peakProcs, peakRSS int64
}

func (s *sampler) loop(interval time.Duration, done <-chan struct{}) {
	for {
		t := time.Now()
		s.scan()
		wait := max(interval, 4*time.Since(t))
		select {
		case <-done:
			return
		case <-time.After(wait):
		}
	}
}

func (s *sampler) scan() {
	d, err := os.Open("/proc")
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	present := make(map[int]bool, len(names))
	var fds, threads, procs, rss int64
	var members []int
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil || pid == s.self {
			continue
		}
		present[pid] = true
		member, seen := s.known[pid]
		if seen && !member {
			continue
		}
		pgrp, thr, pages, ok := readStat(pid)
		if !ok {
			continue
		}
		s.known[pid] = pgrp == int64(s.pgrp)
		if pgrp != int64(s.pgrp) {
			continue
		}
		members = append(members, pid)
		procs++
		threads += thr
		rss += pages
		fds += countFDs(pid)
	}
	for pid := range s.known {
		if !present[pid] {
			delete(s.known, pid)
		}
	}
	s.mu.Lock()
	s.members = members
	s.peakFDs = max(s.peakFDs, fds)
	s.peakThreads = max(s.peakThreads, threads)
	s.peakProcs = max(s.peakProcs, procs)
	s.peakRSS = max(s.peakRSS, rss)
	s.mu.Unlock()
}

// signalAll sends sig to pid and to every member of the group last seen.
func (s *sampler) signalAll(pid int, sig syscall.Signal) {
	s.mu.Lock()
	members := append([]int{pid}, s.members...)
	s.mu.Unlock()
	for _, p := range members {
		syscall.Kill(p, sig)
	}
}

// readStat returns the process group, thread count and resident pages of
// pid from /proc/PID/stat (fields 5, 20 and 24; the command name, field 2,
// is in parentheses and may hold spaces).
func readStat(pid int) (pgrp, threads, rss int64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3
	if len(f) < 22 {
		return 0, 0, 0, false
	}
	pgrp, _ = strconv.ParseInt(string(f[2]), 10, 64)
	threads, _ = strconv.ParseInt(string(f[17]), 10, 64)
	rss, _ = strconv.ParseInt(string(f[21]), 10, 64)
	return pgrp, threads, rss, true
}

func countFDs(pid int) int64 {
	d, err := os.Open("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0
	}
	defer d.Close()
	var n int64
	for {
		names, err := d.Readdirnames(4096)
		n += int64(len(names))
		if err != nil || len(names) == 0 {
			return n
		}
	}
}
