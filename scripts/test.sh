#!/usr/bin/env bash
# test.sh: every check of the repository, and exactly what CI runs (.ci/run):
#
#   0. scripts/s3server.sh build     (SeaweedFS for the S3 tests; exit 3: they skip, loudly)
#   1. go vet ./...
#   2. go test -race -count=1 ./...   (unit, end-to-end, crash and network tests)
#   3. go test -count=1 -v -run '^(TestFetchMemoryBounded|TestFetchDeadHostsMemory|TestFetchReuseConnections)$' ./cmd/
#                                     (the memory and reuse figures, without -race: the race
#                                     detector's own memory grows with the work, and it
#                                     slows the input's parsing below a local server's pace)
#   4. go test -run '^$' -fuzz '^FuzzTreeLayout$' -fuzztime 20s ./lib/outname/
#                                     (the tree layout's names against a reference
#                                     normaliser, 20 s of fuzzing past the seed corpus
#                                     in lib/outname/testdata/fuzz, which step 2 runs)
#      go test -run '^$' -fuzz '^FuzzQuickResponse$' -fuzztime 10s ./lib/download/
#                                     (the lean client's parse of an answer against
#                                     net/http's ReadResponse, 10 s past its seeds)
#   5. scripts/demo.sh                (interrupt and resume the used-by line)
#   6. scripts/wrap-example.sh --self-test
#   7. scripts/shards-ssh.sh          (the README's GNU parallel recipe over three
#                                     sshd on 127.0.0.1, one killed in the middle, into a
#                                     shared directory and then into S3)
#
# Every step runs even when an earlier one failed, so one run shows all the
# failures; the summary at the end names them and the exit status is 1 if
# any failed. Nothing reads the terminal: it runs the same with CI=true and
# stdin closed. The race detector needs cgo (a C compiler); without one the
# tests run without -race and a warning says so (and step 3, which step 2
# then covers, is left out). strace, which cmd/durability_test.go needs, is
# installed with apt-get when missing (as root); if it cannot be, or cannot
# trace, a warning says that test skips. Step 7 installs openssh-server and
# parallel the same way, or says loudly that it checks nothing.

usage() {
	cat <<'USAGE'
usage: scripts/test.sh [-h]
  go vet, go test -race -count=1 ./..., the memory tests without -race,
  20 s of fuzzing the tree layout and 10 s the answer parse, scripts/demo.sh,
  scripts/wrap-example.sh --self-test and scripts/shards-ssh.sh, from the
  repository root
USAGE
}

set -eu
set -o pipefail

case "${1-}" in
-h | --help)
	usage
	exit 0
	;;
"") ;;
*)
	usage >&2
	exit 2
	;;
esac

cd "$(dirname "$0")/.."
exec </dev/null

step() { printf '\xe2\x96\xb6 %s\n' "$*"; }

failed=()
# check NAME COMMAND...: runs the command and records NAME if it fails.
check() {
	local name=$1 start=$SECONDS
	shift
	step "$name"
	if "$@"; then
		step "$name: ok ($((SECONDS - start)) s)"
	else
		step "$name: FAILED (exit $?)"
		failed+=("$name")
	fi
}

race=-race
if [ "$(go env CGO_ENABLED)" != 1 ]; then
	race=
	step "WARNING: cgo is off (no C compiler?), so the tests run without -race; install gcc to get it"
fi

# cmd/durability_test.go checks the order of fsyncs under strace: install it
# when missing, or say loudly that the test will skip (go test hides skips).
if ! command -v strace >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null &&
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends strace >/dev/null; then
		step "installed strace for cmd/durability_test.go"
	else
		step "WARNING: no strace (and it could not be installed): cmd/durability_test.go skips, THE DURABILITY ORDER IS NOT TESTED"
	fi
fi
if command -v strace >/dev/null && ! strace -f -o /dev/null true >/dev/null 2>&1; then
	step "WARNING: strace cannot trace here (ptrace not allowed?): cmd/durability_test.go skips, THE DURABILITY ORDER IS NOT TESTED"
fi

# norace are the tests whose checks are left out under -race (raceBuild in
# cmd/fetch_test.go); step 3 runs them without it.
norace='^(TestFetchMemoryBounded|TestFetchDeadHostsMemory|TestFetchReuseConnections)$'

# The S3 tests (lib/objstore, ckfetch -d s3:// in cmd/) run against SeaweedFS,
# which scripts/s3server.sh builds once (minutes; reused after) before go test,
# whose default -timeout the first build would not fit. When it cannot be built
# here (exit 3), those tests skip, and this says so loudly.
s3build=0
bash scripts/s3server.sh build >/dev/null || s3build=$?
case $s3build in
0) step "weed (SeaweedFS) built for the S3 tests" ;;
3) step "WARNING: weed cannot be built here (see above): THE S3 TESTS SKIP, OBJECT STORAGE (ckfetch -d s3://) IS NOT TESTED" ;;
*)
	step "scripts/s3server.sh build: FAILED (exit $s3build)"
	failed+=("scripts/s3server.sh build")
	;;
esac

check "go vet ./..." go vet ./...
check "go test $race -count=1 ./..." go test $race -count=1 ./...
if [ -n "$race" ]; then
	check "go test -count=1 -v -run '$norace' ./cmd/ (memory and reuse, without -race)" go test -count=1 -v -run "$norace" ./cmd/
fi
# Bounded: -fuzztime stops it. A failure leaves its input in
# lib/outname/testdata/fuzz/FuzzTreeLayout, where step 2 replays it.
check "go test -run '^\$' -fuzz '^FuzzTreeLayout\$' -fuzztime 20s ./lib/outname/" \
	go test -run '^$' -fuzz '^FuzzTreeLayout$' -fuzztime 20s ./lib/outname/
# The same for the lean client's answer parse (lib/download/testdata/fuzz).
check "go test -run '^\$' -fuzz '^FuzzQuickResponse\$' -fuzztime 10s ./lib/download/" \
	go test -run '^$' -fuzz '^FuzzQuickResponse$' -fuzztime 10s ./lib/download/
check "scripts/demo.sh" bash scripts/demo.sh
check "scripts/wrap-example.sh --self-test" bash scripts/wrap-example.sh --self-test
check "scripts/shards-ssh.sh" bash scripts/shards-ssh.sh

if [ ${#failed[@]} -gt 0 ]; then
	step "FAILED: ${failed[*]}"
	exit 1
fi
step "all checks passed"
