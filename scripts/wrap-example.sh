#!/usr/bin/env bash
# wrap-example.sh: ckskip and ckmark around a command that is not ckfetch.
#
# The job: gzip every file named in a list (one path per line) to FILE.gz,
# resumably. Kill it at any moment, run it again, and it goes on where it
# stopped. In order, one file at a time (after mode, the default):
#
#     ckskip -c done.txt files.txt |
#         while IFS= read -r f; do
#             gzip -c "$f" >"$f.gz.tmp" && mv -f "$f.gz.tmp" "$f.gz" || exit 1
#             printf '%s\n' "$f"
#         done | ckmark done.txt
#
# In parallel, in any order (--set mode):
#
#     ckskip --set -c done.txt files.txt | tr '\n' '\0' |
#         xargs -0 -n 1 -P 4 sh -c 'gzip -c "$1" >"$1.gz.tmp" && mv -f "$1.gz.tmp" "$1.gz" && echo "$1"' sh |
#         ckmark done.txt
#
# Why the echo comes after the work: ckmark records whatever it reads, and
# the checkpoint must hold only finished work (SPEC I1). A line echoed before
# (or while) its file is compressed would be recorded even if the job is
# killed halfway, and the next run would skip a file that was never done: the
# bug of `... | anew done.txt | worker` (anew #7). Echoing after the work
# means a kill costs at most the file in flight, which the next run redoes.
# The work writes to a temporary name and renames, so FILE.gz is never a
# half-written file either. (For durability across a power cut as well as a
# kill, also fsync FILE.gz before the echo, e.g. with coreutils' `sync FILE`.)
#
# Why the sequential loop stops at the first failure: in after mode the
# checkpoint is a high-water mark, and ckskip resumes after its last line. If
# the loop went on past a failed file and echoed the next one, the failed file
# would be behind the mark and never retried. So it stops (exit 1); fix the
# cause and run again. In --set mode each line is recorded by itself, so a
# failed file is simply not echoed and the next run retries it; xargs goes on
# with the others and exits 123 at the end.
#
# Why `IFS= read -r` and `tr '\n' '\0' | xargs -0`: paths may hold spaces,
# backslashes and quotes; xargs without -0 would interpret them. Each `echo`
# writes one short line in one write(2), and writes to a pipe of up to
# PIPE_BUF bytes are atomic, so lines from parallel workers never mix.
#
# The functions in_order and in_parallel below are these two pipelines, with
# the work in $WORK plus two hooks for the self-test.
#
# --self-test builds ckskip and ckmark into a temporary directory, creates
# sample files there, runs each mode, interrupts it with SIGINT part way, runs
# it again, and checks: every file was compressed correctly; the checkpoint
# holds every file (in list order in after mode); no file recorded by the
# first run was compressed again by the second; and every file was compressed
# once, apart from the few in flight at the interrupt (at most 1 in after
# mode, at most -P in --set mode) whose echo had not been recorded yet.
# It exits 1 with a message when a check fails.

usage() {
	cat <<'EOF'
usage: scripts/wrap-example.sh [--set [-P N]] LIST CHECKPOINT
       scripts/wrap-example.sh --self-test
       scripts/wrap-example.sh -h
  gzip each file named in LIST (one path per line) to FILE.gz, recording the done
  ones in CHECKPOINT; run it again after an interrupt to go on (ckskip and ckmark
  must be in PATH: go install ./cmd/...)
  --set      compress in parallel with xargs -P, in any order (ckskip --set)
  -P N       parallel jobs with --set (default 4)
  --self-test  check the two modes against an interrupt, in a temporary directory
EOF
}

set -eu
set -o pipefail
export LC_ALL=C

# The work on one file, as a sh script taking the path as $1. WRAP_LOG,
# WRAP_DELAY and WRAP_GATE are for --self-test only: a log of finished files,
# a pause that makes the run long enough to interrupt, and a gate (a file
# that does not exist) at which the work stops once 5 files are logged, for
# at most 30 s: so the interrupt always finds work left, however slow the
# checkpoint's fsync is on a busy machine.
# shellcheck disable=SC2016 # expanded by sh -c, not here
WORK='if [ -n "${WRAP_GATE-}" ] && [ "$(wc -l 2>/dev/null <"$WRAP_LOG" || echo 0)" -ge 5 ]; then
	i=0; while [ ! -e "$WRAP_GATE" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
fi
if [ -n "${WRAP_DELAY-}" ]; then sleep "$WRAP_DELAY" || exit 1; fi
gzip -c "$1" >"$1.gz.tmp" && mv -f "$1.gz.tmp" "$1.gz" || { rm -f "$1.gz.tmp"; exit 1; }
if [ -n "${WRAP_LOG-}" ]; then printf "%s\n" "$1" >>"$WRAP_LOG"; fi'

# in_order is the after-mode job: one file at a time, in list order.
in_order() { # LIST CHECKPOINT
	ckskip -c "$2" "$1" |
		while IFS= read -r f; do
			# The work first, then the echo: see the comment at the top.
			sh -c "$WORK" sh "$f" || {
				printf 'wrap-example: gzip %s failed; stopping so that it is retried next time\n' "$f" >&2
				exit 1
			}
			printf '%s\n' "$f"
		done |
		ckmark "$2"
}

# WORK_THEN_ECHO is the work, then the echo, as one sh script for xargs.
# shellcheck disable=SC2016 # expanded by sh -c, not here
WORK_THEN_ECHO=$WORK'
printf "%s\n" "$1"'

# in_parallel is the --set job: $3 files at a time, recorded as they finish.
in_parallel() { # LIST CHECKPOINT JOBS
	ckskip --set -c "$2" "$1" | tr '\n' '\0' |
		xargs -0 -n 1 -P "$3" sh -c "$WORK_THEN_ECHO" sh |
		ckmark "$2"
}

fail() {
	printf 'wrap-example: FAILED: %s\n' "$*" >&2
	exit 1
}
step() { printf '\xe2\x96\xb6 %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }

tmp=
job_pid=
cleanup() {
	status=$?
	trap - EXIT INT TERM
	if [ -n "$job_pid" ] && kill -0 "$job_pid" 2>/dev/null; then
		kill -TERM -- "-$job_pid" 2>/dev/null || true
		wait "$job_pid" 2>/dev/null || true
	fi
	if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
	exit "$status"
}

# start_job runs "$@" in the background in its own process group (set -m),
# so that kill -INT -- -PID reaches every process of its pipeline.
start_job() {
	set -m
	(
		exec </dev/null
		"$@"
	) &
	job_pid=$!
	set +m
}

# wait_job waits for the job started by start_job, at most $1 seconds.
wait_job() {
	local i=0
	while kill -0 "$job_pid" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -le $(($1 * 10)) ] || fail "the job did not end within $1 s"
		sleep 0.1
	done
	wait "$job_pid" 2>/dev/null || true
	job_pid=
}

count_lines() { if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi; }

# times_in prints how many lines of FILE equal LINE.
times_in() { if [ -f "$2" ]; then grep -cxF -- "$1" "$2" || true; else echo 0; fi; }

# self_test_mode runs one mode (order or set) through interrupt and rerun in
# its own directory, and checks the outcome.
self_test_mode() {
	local mode=$1 dir=$tmp/$1 n=40 i f list done1 left twice=0 allowed
	mkdir -p "$dir/in"
	list=$dir/files.txt
	for i in $(seq 1 $n); do
		case $((i % 10)) in
		3) f="$dir/in/notes $i.txt" ;; # a space in the name
		7) f="$dir/in/it's-$i.txt" ;;  # a quote, which plain xargs would choke on
		*) f=$(printf '%s/in/file-%02d.txt' "$dir" "$i") ;;
		esac
		seq 1 $((i * 100)) >"$f"
		printf '%s\n' "$f"
	done >"$list"
	export WRAP_LOG=$dir/log1 WRAP_DELAY=0.05 WRAP_GATE=$dir/gate
	if [ "$mode" = order ]; then
		allowed=1
		step "after mode: $n files, one at a time; interrupting after about 1 s"
		start_job in_order "$list" "$dir/done.txt"
	else
		allowed=4
		WRAP_DELAY=0.2
		step "--set mode: $n files, 4 at a time with xargs -P 4; interrupting after about 1 s"
		start_job in_parallel "$list" "$dir/done.txt" 4
	fi
	sleep 1
	for i in $(seq 1 200); do # on a slow machine, wait (bounded) until something is recorded
		[ "$(count_lines "$dir/done.txt")" -eq 0 ] || break
		sleep 0.1
	done
	kill -0 "$job_pid" 2>/dev/null || fail "$mode: the first run ended before it could be interrupted"
	kill -INT -- "-$job_pid"
	wait_job 20
	done1=$(count_lines "$dir/done.txt")
	info "run 1: $(count_lines "$dir/log1") files compressed, $done1 recorded in done.txt"
	[ "$done1" -gt 0 ] || fail "$mode: the first run recorded nothing in about 1 s"
	[ "$done1" -lt "$n" ] || fail "$mode: the first run recorded every file before the interrupt"
	if [ "$mode" = order ]; then
		head -n "$done1" "$list" | cmp -s - "$dir/done.txt" ||
			fail "$mode: after run 1, done.txt is not the first $done1 lines of the list"
	fi
	while IFS= read -r f; do
		[ "$(times_in "$f" "$dir/log1")" -ge 1 ] || fail "$mode: $f is in done.txt but was never compressed"
	done <"$dir/done.txt"
	cp "$dir/done.txt" "$dir/done1.txt"

	WRAP_LOG=$dir/log2
	unset WRAP_GATE
	if [ "$mode" = order ]; then
		left=$(ckskip -c "$dir/done.txt" "$list" | wc -l | tr -d ' ')
	else
		left=$(ckskip --set -c "$dir/done.txt" "$list" | wc -l | tr -d ' ')
	fi
	info "run 2: $left of $n files left"
	[ "$left" -eq $((n - done1)) ] || fail "$mode: ckskip prints $left files, want $((n - done1)) ($n listed, $done1 done)"
	if [ "$mode" = order ]; then
		start_job in_order "$list" "$dir/done.txt"
	else
		start_job in_parallel "$list" "$dir/done.txt" 4
	fi
	wait_job 60
	info "run 2: $(count_lines "$dir/log2") files compressed"
	unset WRAP_LOG WRAP_DELAY

	if [ "$mode" = order ]; then
		cmp -s "$list" "$dir/done.txt" || fail "$mode: done.txt does not equal the list line for line"
	else
		sort "$list" >"$dir/want.sorted"
		sort "$dir/done.txt" | cmp -s - "$dir/want.sorted" ||
			fail "$mode: done.txt does not hold every file of the list exactly once"
	fi
	while IFS= read -r f; do
		[ -f "$f.gz" ] || fail "$mode: $f.gz is missing"
		gzip -dc "$f.gz" | cmp -s - "$f" || fail "$mode: $f.gz does not decompress to $f"
		[ "$(times_in "$f" "$dir/done1.txt")" -eq 0 ] || [ "$(times_in "$f" "$dir/log2")" -eq 0 ] ||
			fail "$mode: $f was recorded by run 1 and compressed again by run 2"
		case $(($(times_in "$f" "$dir/log1") + $(times_in "$f" "$dir/log2"))) in
		1) ;;
		2) twice=$((twice + 1)) ;;
		*) fail "$mode: $f was compressed $(($(times_in "$f" "$dir/log1") + $(times_in "$f" "$dir/log2"))) times" ;;
		esac
	done <"$list"
	[ "$twice" -le "$allowed" ] ||
		fail "$mode: $twice files were compressed twice; at most $allowed (in flight at the interrupt) may be"
	info "all $n files compressed correctly and recorded; compressed twice: $twice (at most $allowed may be)"
}

self_test() {
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/ck-wrap.XXXXXX")
	trap cleanup EXIT
	trap 'printf "wrap-example: interrupted\n" >&2; exit 130' INT
	trap 'exit 143' TERM
	cd "$(dirname "$0")/.."
	step "building ckskip and ckmark into $tmp/bin"
	go build -o "$tmp/bin/" ./cmd/ckskip ./cmd/ckmark || fail "go build failed"
	PATH=$tmp/bin:$PATH
	self_test_mode order
	self_test_mode set
	step "wrap-example self-test passed"
}

jobs=4
set_mode=0
while [ $# -gt 0 ]; do
	case $1 in
	-h | --help)
		usage
		exit 0
		;;
	--self-test)
		[ $# -eq 1 ] || {
			usage >&2
			exit 2
		}
		self_test
		exit 0
		;;
	--set) set_mode=1 ;;
	-P)
		[ $# -ge 2 ] || {
			usage >&2
			exit 2
		}
		jobs=$2
		shift
		case $jobs in '' | *[!0-9]* | 0*)
			printf 'wrap-example: -P needs a positive integer, not %s\n' "$jobs" >&2
			exit 2
			;;
		esac
		;;
	-*)
		usage >&2
		exit 2
		;;
	*) break ;;
	esac
	shift
done
[ $# -eq 2 ] || {
	usage >&2
	exit 2
}
if ! command -v ckskip >/dev/null || ! command -v ckmark >/dev/null; then
	printf 'wrap-example: ckskip and ckmark must be in PATH (go install ./cmd/... in the repository)\n' >&2
	exit 2
fi
if [ "$set_mode" = 1 ]; then
	in_parallel "$1" "$2" "$jobs"
else
	in_order "$1" "$2"
fi
