package fetch

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

// failWriter records what it is given and fails from its fails-th write on
// with err.
type failWriter struct {
	got    strings.Builder
	writes int
	fails  int
	err    error
}

func (w *failWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.fails > 0 && w.writes >= w.fails {
		return 0, w.err
	}
	return w.got.Write(p)
}

func items(lines ...string) []*item {
	var its []*item
	for _, l := range lines {
		its = append(its, &item{line: l})
	}
	return its
}

// TestEchoOut: the lines settled together leave in one write, each with
// its newline; once the reader is gone (EPIPE) or a write failed, write says
// so once and then writes nothing more.
func TestEchoOut(t *testing.T) {
	w := &failWriter{}
	e := &echoOut{w: w}
	if err := e.write(items("a", "b c")); err != nil {
		t.Fatal(err)
	}
	if err := e.write(nil); err != nil || w.writes != 1 {
		t.Fatalf("an empty echo: %v, %d writes; want nil and no write", err, w.writes)
	}
	if err := e.write(items("d")); err != nil {
		t.Fatal(err)
	}
	if got := w.got.String(); got != "a\nb c\nd\n" || w.writes != 2 {
		t.Fatalf("echoed %q in %d writes; want %q in 2", got, w.writes, "a\nb c\nd\n")
	}

	for _, c := range []struct {
		name string
		err  error
		want func(error) bool
	}{
		{"reader gone", syscall.EPIPE, func(err error) bool { return err == errPipe }},
		{"disk full", syscall.ENOSPC, func(err error) bool {
			return errors.Is(err, syscall.ENOSPC) && strings.HasPrefix(err.Error(), "write stdout: ")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := &failWriter{fails: 2, err: c.err}
			e := &echoOut{w: w}
			if err := e.write(items("a")); err != nil {
				t.Fatal(err)
			}
			if err := e.write(items("b")); !c.want(err) {
				t.Fatalf("the failed write returned %v", err)
			}
			if err := e.write(items("c")); err != nil || w.writes != 2 {
				t.Fatalf("after the failure: %v, %d writes; want nil and no more writes", err, w.writes)
			}
			if e.gone != (c.err == syscall.EPIPE) {
				t.Errorf("gone = %v after %v", e.gone, c.err)
			}
		})
	}
}
