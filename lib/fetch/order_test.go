package fetch_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/fetch"
	"github.com/ck-tools/ck/lib/fetchtest"
)

// waitUntil polls cond until it holds, and fails the test after a generous
// bound (a failure timeout that keeps a bug from hanging the test, not a
// performance bound).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	const bound = 60 * time.Second
	for deadline := time.Now().Add(bound); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", bound, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// started is a fetch.Main running in a goroutine.
type started struct {
	ended  chan struct{}
	code   int
	stdout *bytes.Buffer
	stderr *bytes.Buffer
}

func startMain(ctx context.Context, stdin string, args ...string) *started {
	s := &started{ended: make(chan struct{}), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	go func() {
		defer close(s.ended)
		s.code = fetch.Main(ctx, args, strings.NewReader(stdin), s.stdout, s.stderr)
	}()
	return s
}

// wait returns the status of Main once it has returned.
func (s *started) wait() int {
	<-s.ended
	return s.code
}

// TestFetchStartOrderOneSlot: with one host and -j 1, lines start strictly
// in input order. The first line is small, the second stalls until the
// client goes away; SIGINT comes once the second is in flight (so the first
// no longer holds the only slot). Every time, the server saw the first line
// first, and it was echoed. Run 100 times: a scheduler where lines race for
// the slot gets this wrong now and then.
func TestFetchStartOrderOneSlot(t *testing.T) {
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	for i := range 100 {
		first := fmt.Sprintf("%s/f/first?size=10&tag=%d", srv.URL, i)
		second := fmt.Sprintf("%s/f/second?size=1000&stall=0&tag=%d", srv.URL, i)
		srv.Reset()
		ctx, cancel := context.WithCancelCause(context.Background())
		m := startMain(ctx, first+"\n"+second+"\n", "-q", "-j", "1", "-d", t.TempDir())
		waitUntil(t, "the second line to be requested", func() bool { return srv.Requests(second) == 1 })
		cancel(cli.Signal{Sig: os.Interrupt})
		code := m.wait()
		log := srv.Log()
		if len(log) == 0 || srv.URL+log[0].URL != first {
			t.Fatalf("run %d: the server's first request %v; want the first line %s", i, log, first)
		}
		if code != cli.ExitInterrupted || m.stdout.String() != first+"\n" {
			t.Fatalf("run %d: status %d, echoed %q; want %d and the first line\nstderr:\n%s", i, code, m.stdout, cli.ExitInterrupted, m.stderr)
		}
	}
}

// gatedHosts are test servers, one per host, that log each request as it
// arrives and hold it until the test releases it by its path.
type gatedHosts struct {
	mu    sync.Mutex
	log   []string // "HOST PATH", in arrival order
	gates map[string]chan struct{}
	srvs  []*httptest.Server
	stop  chan struct{} // closed at the end of the test: every request ends
}

func newGatedHosts(t *testing.T, names ...string) *gatedHosts {
	g := &gatedHosts{gates: map[string]chan struct{}{}, stop: make(chan struct{})}
	for _, name := range names {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g.mu.Lock()
			g.log = append(g.log, name+r.URL.Path)
			gate := g.gate(name + r.URL.Path)
			g.mu.Unlock()
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			case <-g.stop:
			}
			io.WriteString(w, "ok\n")
		}))
		t.Cleanup(srv.Close)
		g.srvs = append(g.srvs, srv)
	}
	t.Cleanup(func() { close(g.stop) }) // before the servers close
	return g
}

// gate returns the gate of a request; g.mu is held.
func (g *gatedHosts) gate(req string) chan struct{} {
	c := g.gates[req]
	if c == nil {
		c = make(chan struct{})
		g.gates[req] = c
	}
	return c
}

func (g *gatedHosts) release(req string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.gate(req))
}

func (g *gatedHosts) requests() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.log...)
}

// TestFetchStartOrderHosts: -j 2, --per-host 1 and three hosts. A free slot
// goes to the oldest queued line whose host can take it; lines of a busy
// host are passed over, never an older line of a free one. The test holds
// every response and releases one at a time, so each start is the rule's
// only choice.
func TestFetchStartOrderHosts(t *testing.T) {
	g := newGatedHosts(t, "A", "B", "C")
	base := map[byte]string{'A': g.srvs[0].URL, 'B': g.srvs[1].URL, 'C': g.srvs[2].URL}
	lines := []string{"A1", "A2", "B1", "A3", "C1", "B2", "C2"}
	var input strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&input, "%s/%s\n", base[l[0]], l)
	}
	var want, sorted []string
	ctx, cancel := context.WithCancel(context.Background())
	m := startMain(ctx, input.String(), "-q", "-j", "2", "--per-host", "1", "-d", filepath.Join(t.TempDir(), "out"))
	t.Cleanup(func() { cancel(); m.wait() })
	for _, step := range []struct {
		release string   // the response the test lets end
		starts  []string // what the log holds then
	}{
		// Two slots: A1, then A2 is passed over (A is busy) for B1.
		{"", []string{"A/A1", "B/B1"}},
		// B1's slot: A2 and A3 wait for A, so C1.
		{"B/B1", []string{"C/C1"}},
		// A1's slot: A is free, A2 is the oldest.
		{"A/A1", []string{"A/A2"}},
		// C1's slot: A3 waits for A (A2), B2 is next.
		{"C/C1", []string{"B/B2"}},
		// A2's slot: A3, older than C2.
		{"A/A2", []string{"A/A3"}},
		// B2's slot: C2, the last one.
		{"B/B2", []string{"C/C2"}},
		{"A/A3", nil},
		{"C/C2", nil},
	} {
		if step.release != "" {
			g.release(step.release)
		}
		before := len(want)
		want = append(want, step.starts...)
		waitUntil(t, fmt.Sprintf("%d requests after releasing %q", len(want), step.release), func() bool { return len(g.requests()) >= len(want) })
		// Lines that start together reach their servers in either order.
		got := append(sorted[:before:before], g.requests()[before:]...)
		slices.Sort(got[before:])
		sorted = got
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("after releasing %q the servers got %v; want %v", step.release, got, want)
		}
	}
	if code := m.wait(); code != cli.ExitOK || m.stdout.String() != input.String() {
		t.Fatalf("status %d, echoed %q; want 0 and every line\nstderr:\n%s", code, m.stdout, m.stderr)
	}
	if got := g.requests(); len(got) != len(lines) {
		t.Errorf("the servers got %v; want one request per line", got)
	}
}

// TestFetchRetryGivesSlotBack: a line backing off before its retry holds no
// slot, so with -j 1 the next line starts meanwhile; the retry then gets the
// slot through the scheduler like any line.
func TestFetchRetryGivesSlotBack(t *testing.T) {
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	a := srv.URL + "/f/a?size=10&fail=1" // one 503, then the file
	b := srv.URL + "/f/b?size=10"
	m := startMain(context.Background(), a+"\n"+b+"\n", "-q", "-j", "1", "--backoff", "200ms", "-d", t.TempDir())
	if code := m.wait(); code != cli.ExitOK || m.stdout.String() != a+"\n"+b+"\n" {
		t.Fatalf("status %d, echoed %q; want 0 and both lines in order\nstderr:\n%s", code, m.stdout, m.stderr)
	}
	var got []string
	for _, r := range srv.Log() {
		got = append(got, srv.URL+r.URL)
	}
	if want := []string{a, b, a}; !slices.Equal(got, want) {
		t.Errorf("requests %q; want %q (b while a backs off, then a's retry)", got, want)
	}
}

// TestFetchSleepSkipsExisting: a line whose file is already there makes no
// request, so it does not count against -sleep: a rerun over finished files
// does not wait.
func TestFetchSleepSkipsExisting(t *testing.T) {
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	var done, input strings.Builder
	for i := range 3 {
		fmt.Fprintf(&done, "%s/f/e%d?size=10\n", srv.URL, i)
	}
	if code, _, stderr := runMain(t, context.Background(), strings.NewReader(done.String()), "-q", "-j", "1", "-d", dir); code != cli.ExitOK {
		t.Fatalf("first run: status %d\n%s", code, stderr)
	}
	input.WriteString(done.String())
	fresh := srv.URL + "/f/fresh?size=10"
	input.WriteString(fresh + "\n")
	srv.Reset()
	// With a request paced for each existing file, this would take half an hour.
	code, stdout, stderr := runMain(t, context.Background(), strings.NewReader(input.String()), "-q", "-j", "1", "-sleep", "10m", "-d", dir)
	if code != cli.ExitOK || stdout != input.String() {
		t.Fatalf("status %d, echoed %q; want 0 and every line\nstderr:\n%s", code, stdout, stderr)
	}
	if n := srv.TotalRequests(); n != 1 || srv.Requests(fresh) != 1 {
		t.Errorf("%d requests; want one, for %s", n, fresh)
	}
}

// TestFetchFailedInInputOrderOneSlot: with -j 1 lines run one after the
// other, so --failed lists their failures in input order. A line that fails
// before any request (its PATH is a directory) used to give its slot back
// before its result was in, so the next line could overtake it.
func TestFetchFailedInInputOrderOneSlot(t *testing.T) {
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	var in strings.Builder
	var want []string
	for i := range 200 {
		name := fmt.Sprintf("d%03d", i)
		if err := os.MkdirAll(filepath.Join(out, name), 0o777); err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("%s/f/x%d?size=1\t%s", srv.URL, i, name)
		in.WriteString(line + "\n")
		want = append(want, line)
	}
	failed := filepath.Join(dir, "failed.txt")
	code := fetch.Main(context.Background(), []string{"-q", "-j", "1", "-d", out, "--failed", failed},
		strings.NewReader(in.String()), io.Discard, io.Discard)
	if code != cli.ExitFailure {
		t.Fatalf("status %d, want %d", code, cli.ExitFailure)
	}
	wantFailedInOrder(t, failed, want)
}

// TestFetchFailedInInputOrderOneSlotHTTP: with -j 1, lines that fail on
// the server's answer (404, and 500 after its retries) are listed in
// --failed in input order too: a failed attempt's slot is not given back
// before its line's result is in.
func TestFetchFailedInInputOrderOneSlotHTTP(t *testing.T) {
	srv := fetchtest.New()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	var in strings.Builder
	var want []string
	for i := range 300 {
		line := fmt.Sprintf("%s/status/404?n=%d", srv.URL, i)
		if i%3 == 0 {
			line = fmt.Sprintf("%s/f/ok%d?size=10", srv.URL, i)
		} else {
			want = append(want, line)
		}
		in.WriteString(line + "\n")
	}
	failed := filepath.Join(dir, "failed.txt")
	code := fetch.Main(context.Background(), []string{"-q", "-j", "1", "-d", filepath.Join(dir, "out"), "--failed", failed},
		strings.NewReader(in.String()), io.Discard, io.Discard)
	if code != cli.ExitFailure {
		t.Fatalf("status %d, want %d", code, cli.ExitFailure)
	}
	wantFailedInOrder(t, failed, want)
}

// wantFailedInOrder checks that the --failed file holds the lines want,
// in that order (its "# reason" lines aside).
func wantFailedInOrder(t *testing.T, failed string, want []string) {
	t.Helper()
	b, err := os.ReadFile(failed)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if !strings.HasPrefix(l, "#") {
			got = append(got, l)
		}
	}
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("--failed is not in input order: record %d is %q, want %q", i, got[i], want[i])
			}
		}
		t.Fatalf("--failed has %d records, want %d", len(got), len(want))
	}
}
