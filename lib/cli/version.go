package cli

import (
	"runtime/debug"
	"strings"

	"github.com/alecthomas/kong"
)

// versionFlag is the --version flag that Parse adds to every tool.
type versionFlag struct {
	Version kong.VersionFlag `short:"V" help:"Print the version and exit."`
}

// Version returns the version of the running binary (see VersionOf).
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	return VersionOf(info)
}

// VersionOf returns the version that info records: the module's version
// (v1.2.3 after go install github.com/ck-tools/ck/cmd/ckfetch@v1.2.3), or
// "(devel)" for a build from a work tree, followed by the VCS revision and
// "modified" when the build recorded them, and the Go version in
// parentheses.
func VersionOf(info *debug.BuildInfo) string {
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" && !strings.Contains(v, rev[:min(12, len(rev))]) {
		// A pseudo-version (v0.0.0-2024…-abcdef123456) names it already.
		v += " rev " + rev[:min(12, len(rev))]
		if modified {
			v += " modified"
		}
	}
	if info.GoVersion != "" {
		v += " (" + info.GoVersion + ")"
	}
	return v
}

// UserAgentVersion returns the version as a User-Agent product version
// (RFC 9110 10.1.5, a token): the module version, or "devel".
func UserAgentVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok || !strings.HasPrefix(info.Main.Version, "v") {
		return "devel"
	}
	return info.Main.Version
}
