package cmd_test

// Politeness per host actually contacted (issue 8 item 5): every redirect
// hop takes the --per-host slot and the -sleep pacing of the host it goes
// to, and Retry-After holds the host that sent it. And nothing made for a
// line before a response brings its bytes (item 1).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/fetchtest"
	"github.com/ck-tools/ck/lib/outname"
)

// redirectTo is the URL on srv of a 302 to target.
func redirectTo(srv *fetchtest.Server, target string) string {
	return srv.URL + "/status/302?location=" + url.QueryEscape(target)
}

// newServer starts a fetchtest server that the test closes.
func newServer(t *testing.T) *fetchtest.Server {
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	return srv
}

// startsOf returns when srv's logged requests began, in order.
func startsOf(srv *fetchtest.Server) []time.Time {
	var starts []time.Time
	for _, r := range srv.Log() {
		starts = append(starts, r.Start)
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	return starts
}

// checkGaps fails if two of starts are closer than gap, less a slack of
// half of it: the server sees arrivals, not starts, and on a loaded machine
// (a load of 30 on 2 cores, while the whole suite runs with -race) one
// arrival can lag its start by 100 ms. Without pacing the gaps are a few ms.
func checkGaps(t *testing.T, host string, starts []time.Time, gap time.Duration) {
	t.Helper()
	slack := gap / 2
	for i := 1; i < len(starts); i++ {
		if d := starts[i].Sub(starts[i-1]); d < gap-slack {
			t.Errorf("%s: requests %d and %d started %s apart; want at least %s (-sleep)", host, i, i+1, d, gap)
		}
	}
}

// TestFetchRedirectPoliteness: lines on host A that redirect to host B,
// among lines of B itself. Before, --per-host and -sleep were keyed by the
// input URL's host, so B saw A's hops and its own lines at once.
func TestFetchRedirectPoliteness(t *testing.T) {
	t.Run("per-host and sleep on the target", func(t *testing.T) {
		t.Parallel()
		a, b := newServer(t), newServer(t)
		var input strings.Builder
		for i := range 4 {
			// Each of B's answers takes 50 ms, so that requests in flight
			// together would be seen together.
			fmt.Fprintf(&input, "%s\n", redirectTo(a, fmt.Sprintf("%s/f/hop%d?size=10&delay=50ms", b.URL, i)))
			fmt.Fprintf(&input, "%s/f/own%d?size=10&delay=50ms\n", b.URL, i)
		}
		const gap = 300 * time.Millisecond
		out, stderr, st := runFetch(t, t.TempDir(), input.String(), "-q", "-d", "out", "-j", "4", "--per-host", "1", "-sleep", gap.String())
		if st != "exit 0" || out != input.String() {
			t.Fatalf("ckfetch: %s, echoed %q; want exit 0 and every line\nstderr:\n%s", st, out, stderr)
		}
		if b.TotalRequests() != 8 || b.MaxActive() != 1 {
			t.Errorf("B got %d requests, at most %d at once; want 8, one at a time (--per-host 1)", b.TotalRequests(), b.MaxActive())
		}
		checkGaps(t, "B", startsOf(b), gap)
		checkGaps(t, "A", startsOf(a), gap)
	})

	t.Run("302 to the same host waits -sleep", func(t *testing.T) {
		t.Parallel()
		a := newServer(t)
		line := redirectTo(a, "/f/same?size=10")
		const gap = 300 * time.Millisecond
		out, stderr, st := runFetch(t, t.TempDir(), line+"\n", "-q", "-d", "out", "-sleep", gap.String())
		if st != "exit 0" || out != line+"\n" {
			t.Fatalf("ckfetch: %s, echoed %q; want exit 0 and the line\nstderr:\n%s", st, out, stderr)
		}
		starts := startsOf(a)
		if len(starts) != 2 {
			t.Fatalf("%d requests; want 2 (the redirect, then the file)", len(starts))
		}
		checkGaps(t, "A", starts, gap)
	})

	t.Run("Retry-After holds the host that sent it", func(t *testing.T) {
		t.Parallel()
		a, b := newServer(t), newServer(t)
		// Line 1's hop to B gets a 503 with Retry-After: 3 the first time.
		// A's own lines go on meanwhile; B's own line waits for the hold.
		held := b.URL + "/f/held?size=10&fail=1&retry-after=3"
		input := redirectTo(a, held) + "\n" +
			a.URL + "/f/a1?size=10\n" +
			a.URL + "/f/a2?size=10\n" +
			b.URL + "/f/b1?size=10\n"
		out, stderr, st := runFetch(t, t.TempDir(), input, "-q", "-d", "out", "-j", "1")
		if st != "exit 0" || out != input {
			t.Fatalf("ckfetch: %s, echoed %q; want exit 0 and every line\nstderr:\n%s", st, out, stderr)
		}
		byURL := map[string][]fetchtest.Request{}
		for _, srv := range []*fetchtest.Server{a, b} {
			for _, r := range srv.Log() {
				byURL[r.URL] = append(byURL[r.URL], r)
			}
		}
		h := byURL["/f/held?size=10&fail=1&retry-after=3"]
		if len(h) != 2 || h[0].Status != 503 || h[1].Status != 200 {
			t.Fatalf("the held URL got %+v; want a 503, then a 200", h)
		}
		const hold, slack = 3 * time.Second, 500 * time.Millisecond // see checkGaps
		if d := h[1].Start.Sub(h[0].Start); d < hold-slack {
			t.Errorf("the held URL was asked again %s after its 503; want at least %s (Retry-After)", d, hold)
		}
		for _, u := range []string{"/f/a1?size=10", "/f/a2?size=10"} {
			if r := byURL[u]; len(r) != 1 || !r[0].Start.Before(h[1].Start) {
				t.Errorf("A's line %s: %+v; want it fetched while B was held, before the held URL's retry", u, r)
			}
		}
		if r := byURL["/f/b1?size=10"]; len(r) != 1 || r[0].Start.Sub(h[0].Start) < hold-slack {
			t.Errorf("B's own line: %+v; want it started at least %s after B's 503 (B is held)", r, hold)
		}
	})
}

// TestFetchBadRedirect: a Location that cannot be followed fails the line at
// the first attempt, whatever --retries says: exit 1, the reason in
// --failed and --report, one request.
func TestFetchBadRedirect(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	line := srv.URL + "/status/302?location=" + url.QueryEscape("http://%zz/x")
	dir := t.TempDir()
	out, stderr, st := runFetch(t, dir, line+"\n", "-q", "-d", "out", "--retries", "3", "--failed", "failed.txt", "--report", "report.jsonl")
	if st != "exit 1" || out != "" {
		t.Fatalf("ckfetch: %s, echoed %q; want exit 1 and nothing\nstderr:\n%s", st, out, stderr)
	}
	if srv.TotalRequests() != 1 {
		t.Errorf("%d requests; want 1", srv.TotalRequests())
	}
	failed, err := os.ReadFile(filepath.Join(dir, "failed.txt"))
	if err != nil || !strings.Contains(string(failed), "Location") || !strings.HasSuffix(string(failed), line+"\n") {
		t.Errorf("failed.txt: %q (%v); want the line after a reason naming the Location", failed, err)
	}
	var rep struct{ Attempts int }
	b, err := os.ReadFile(filepath.Join(dir, "report.jsonl"))
	if err != nil || json.Unmarshal(b, &rep) != nil || rep.Attempts != 1 {
		t.Errorf("report: %q (%v); want one attempt", b, err)
	}
}

// TestFetchResumeThroughRedirect: a download interrupted behind a redirect
// to another host resumes there with a Range request; the file is exact and
// the target sent each byte once.
func TestFetchResumeThroughRedirect(t *testing.T) {
	t.Parallel()
	a, b := newServer(t), newServer(t)
	dir := t.TempDir()
	const size, stallAt = 4_000_000, 1_000_000
	target := fmt.Sprintf("%s/f/big?size=%d&stall=%d", b.URL, size, stallAt)
	line := redirectTo(a, target)
	part := outPath(t, dir, line) + outname.PartSuffix

	p := startFetch(t, dir, strings.NewReader(line+"\n"), "-q", "-d", "out")
	waitFor(t, "the .part file to hold the bytes sent before the stall", func() bool { return fileSize(part) == stallAt })
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if got := how(p.wait(30 * time.Second)); got != "exit 130" {
		t.Fatalf("ckfetch ended with %s; want exit 130\nstderr:\n%s", got, p.stderr)
	}

	out, stderr, st := runFetch(t, dir, line+"\n", "-q", "-d", "out")
	if st != "exit 0" || out != line+"\n" {
		t.Fatalf("rerun: %s, echoed %q; want exit 0 and the line\nstderr:\n%s", st, out, stderr)
	}
	if got, err := os.ReadFile(outPath(t, dir, line)); err != nil || !bytes.Equal(got, fetchtest.Body("big", size)) {
		t.Errorf("the resumed file has %d bytes (%v) that are not the server's %d bytes", len(got), err, size)
	}
	if st := b.URLStats(target); st.Requests != 2 || st.Ranged != 1 || st.Bytes != size {
		t.Errorf("B: %d requests, %d ranged, %d bytes sent; want 2, 1, and each of the %d bytes once", st.Requests, st.Ranged, st.Bytes, size)
	}
}

// TestFetchNothingMadeForFailures: a run whose lines fail before a response
// brings bytes (404, 503 after the retries, a redirect to a 404, a refused
// connection) leaves the output directory as it found it: no host
// directory, no .part.
func TestFetchNothingMadeForFailures(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	refuser, err := fetchtest.Refusing()
	if err != nil {
		t.Fatal(err)
	}
	defer refuser.Close()
	refused := refuser.URL
	input := srv.URL + "/status/404\n" +
		srv.URL + "/f/busy?size=10&fail=99\n" +
		redirectTo(srv, srv.URL+"/status/404?to=x") + "\n" +
		refused + "/dead/file\n"
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "out"), 0o777); err != nil {
		t.Fatal(err)
	}
	out, stderr, st := runFetch(t, dir, input, "-q", "-d", "out", "--retries", "1", "--backoff", "1ms", "--failed", "failed.txt")
	if st != "exit 1" || out != "" {
		t.Fatalf("ckfetch: %s, echoed %q; want exit 1 and nothing\nstderr:\n%s", st, out, stderr)
	}
	find, err := exec.Command("find", filepath.Join(dir, "out")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(find), filepath.Join(dir, "out")+"\n"; got != want {
		t.Errorf("find out:\n%s; want only out itself", got)
	}
}

// TestFetchManyHostsFewDescriptors: with -j 1, 200 distinct hosts (half of
// them refusing connections) finish under ulimit -n 100, the limit:
// a line holds nothing before its slot, and an idle connection is not kept
// per host ever contacted. (Not lower: durable.DirSyncer alone keeps up to
// 64 directories open.)
func TestFetchManyHostsFewDescriptors(t *testing.T) {
	t.Parallel()
	var input strings.Builder
	var live []*fetchtest.Server
	for i := range 100 {
		srv := newServer(t)
		live = append(live, srv)
		fmt.Fprintf(&input, "%s/f/file%d?size=100\n", srv.URL, i)
		dead, err := fetchtest.Refusing()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(dead.Close)
		fmt.Fprintf(&input, "%s/f/dead%d\n", dead.URL, i)
	}
	dir := t.TempDir()
	const limit = 100
	cmd := exec.Command("sh", "-c", fmt.Sprintf("ulimit -n %d && exec ckfetch -q -d out -j 1 --retries 0 --failed failed.txt", limit))
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(input.String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := stdout.String()
	if st := cmd.ProcessState; st == nil || st.ExitCode() != 1 || strings.Contains(stderr.String(), "too many open files") {
		t.Fatalf("ckfetch under ulimit -n %d: %v; want exit 1 (the dead hosts), and no \"too many open files\"\nstderr:\n%s", limit, err, stderr.String())
	}
	if n := strings.Count(out, "\n"); n != 100 {
		t.Errorf("%d lines echoed; want the 100 of the live hosts", n)
	}
	failed, err := os.ReadFile(filepath.Join(dir, "failed.txt"))
	if err != nil || strings.Count(string(failed), "\n# ")+1 != 100 {
		t.Errorf("failed.txt has %d records (%v); want the 100 dead hosts", strings.Count(string(failed), "\n# ")+1, err)
	}
	for i, srv := range live {
		if srv.TotalRequests() != 1 {
			t.Errorf("live host %d got %d requests; want 1", i, srv.TotalRequests())
		}
	}
}
