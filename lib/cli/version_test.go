package cli_test

import (
	"bytes"
	"regexp"
	"runtime/debug"
	"testing"

	"github.com/ck-tools/ck/lib/cli"
)

func TestVersionOf(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	for _, tc := range []struct {
		name string
		info debug.BuildInfo
		want string
	}{
		{"go install @v1.2.3", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3 (go1.26.8)"},
		{"work tree", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs("0123456789abcdef0123", "false")},
			"(devel) rev 0123456789ab (go1.26.8)"},
		{"modified work tree", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("0123456789abcdef0123", "true")},
			"(devel) rev 0123456789ab modified"},
		{"pseudo-version", debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20260101000000-0123456789ab"}, Settings: vcs("0123456789abcdef0123", "false")},
			"v0.0.0-20260101000000-0123456789ab"},
		{"nothing recorded", debug.BuildInfo{}, "(devel)"},
	} {
		if got := cli.VersionOf(&tc.info); got != tc.want {
			t.Errorf("%s: VersionOf = %q; want %q", tc.name, got, tc.want)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for _, arg := range []string{"--version", "-V", "-version"} {
		var g grammar
		var out, errOut bytes.Buffer
		code, ok := cli.Parse("tool", "A tool.", &g, []string{arg}, &out, &errOut)
		if code != 0 || ok || errOut.Len() != 0 {
			t.Errorf("Parse(%s) = %d, %v, stderr %q; want 0, false, nothing", arg, code, ok, errOut.String())
		}
		if want := "tool " + cli.Version() + "\n"; out.String() != want {
			t.Errorf("Parse(%s) printed %q; want %q", arg, out.String(), want)
		}
	}
	if !regexp.MustCompile(`^(\(devel\)|v[0-9])`).MatchString(cli.Version()) {
		t.Errorf("Version() = %q", cli.Version())
	}
}

func TestLoggerMasksURLs(t *testing.T) {
	var b bytes.Buffer
	cli.Logger{Name: "tool", W: &b}.Printf("%s: %v", "https://user:s3cret@h/x", "boom")
	if got, want := b.String(), "tool: https://***@h/x: boom\n"; got != want {
		t.Errorf("Printf wrote %q; want %q", got, want)
	}
}
