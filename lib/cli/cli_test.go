package cli_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ck-tools/ck/lib/cli"
)

func TestRewriteLongFlags(t *testing.T) {
	long := map[string]bool{"sleep": true, "per-host": true, "q": false}
	tests := []struct {
		in, want []string
	}{
		{[]string{"-sleep", "1s"}, []string{"--sleep", "1s"}},
		{[]string{"-sleep=1s"}, []string{"--sleep=1s"}},
		{[]string{"--sleep", "1s"}, []string{"--sleep", "1s"}},
		{[]string{"-per-host", "2", "-j", "8"}, []string{"--per-host", "2", "-j", "8"}},
		{[]string{"-jq"}, []string{"-jq"}},                   // short flags together stay short
		{[]string{"-unknown"}, []string{"-unknown"}},         // kong reports it
		{[]string{"--", "-sleep"}, []string{"--", "-sleep"}}, // after --, arguments are not flags
		{[]string{"-"}, []string{"-"}},                       // stdin
	}
	for _, tt := range tests {
		if got := cli.RewriteLongFlags(tt.in, long); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("RewriteLongFlags(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

type grammar struct {
	Sleep time.Duration `help:"Sleep."`
	Jobs  int           `short:"j" default:"1"`
	Args  []string      `arg:"" optional:""`
}

func TestParse(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		ok     bool
		stderr string
	}{
		{[]string{"-sleep", "2s", "-j", "3", "x"}, 0, true, ""},
		{[]string{"--help"}, 0, false, ""},
		{[]string{"--nope"}, cli.ExitUsage, false, "tool: unknown flag --nope (see tool --help)"},
		{[]string{"-j", "x"}, cli.ExitUsage, false, "tool: --jobs"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var g grammar
			var out, errOut bytes.Buffer
			code, ok := cli.Parse("tool", "A tool.", &g, tt.args, &out, &errOut)
			if code != tt.code || ok != tt.ok || !strings.Contains(errOut.String(), tt.stderr) {
				t.Errorf("Parse = %d, %v, stderr %q; want %d, %v, stderr with %q", code, ok, errOut.String(), tt.code, tt.ok, tt.stderr)
			}
			if tt.ok && (g.Sleep != 2*time.Second || g.Jobs != 3) {
				t.Errorf("parsed %+v", g)
			}
			if tt.args[0] == "--help" && !strings.Contains(out.String(), "Usage: tool") {
				t.Errorf("--help printed %q on stdout", out.String())
			}
		})
	}
}

func TestSignalStatus(t *testing.T) {
	for sig, want := range map[syscall.Signal]int{syscall.SIGHUP: 129, syscall.SIGINT: 130, syscall.SIGTERM: 143} {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(cli.Signal{Sig: sig})
		if got := cli.SignalStatus(ctx); got != want {
			t.Errorf("SignalStatus after %v = %d, want %d", sig, got, want)
		}
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("other"))
	if got := cli.SignalStatus(ctx); got != 0 {
		t.Errorf("SignalStatus after another cause = %d, want 0", got)
	}
}
