#!/usr/bin/env bash
# demo.sh: show, on a local test server, that the used-by line resumes where it
# was interrupted, and check that it did.
#
#     ckskip -c urls_check.txt urls.txt | ckfetch -sleep 100ms | ckmark urls_check.txt
#
# What it does, in order: builds ckskip, ckfetch, ckmark and the misbehaving
# test server (scripts/testserver) into a temporary directory; starts the
# server on 127.0.0.1; writes urls.txt, 30 URLs of mixed sizes, some slow
# (slow=), one that answers 503 once (fail=1), one empty; runs the line in the
# background and interrupts it with SIGINT (as Ctrl-C would) after about 2 s;
# shows the checkpoint, the finished files and the .part files kept; runs the
# same line again; shows that the second run did only the rest. It exits 1 with
# a message saying what went wrong when a check fails:
#   - after the interrupt, the checkpoint is a prefix of urls.txt and every
#     line in it has its complete file (nothing recorded before it was done);
#   - before the second run, ckskip prints exactly the lines not in the
#     checkpoint, fewer than the list;
#   - in the second run the server saw no request for a file finished in the
#     first run, and every kept non-empty .part file was resumed with a Range
#     request;
#   - at the end the checkpoint equals urls.txt line for line, no .part file is
#     left, and every file has the server's exact bytes (compared with a clean
#     download of the same bodies).
# An EXIT trap stops everything it started and removes the temporary directory
# (unless --keep). Needs bash (3.2 or later) and Go; no curl, no network
# except 127.0.0.1 (and the Go module proxy if the build needs modules).

usage() {
	cat <<'EOF'
usage: scripts/demo.sh [--keep] [-h]
  --keep   keep the temporary directory (binaries, work directory) and print its path
EOF
}

set -eu
set -o pipefail
export LC_ALL=C

keep=0
for arg in "$@"; do
	case $arg in
	-h | --help)
		usage
		exit 0
		;;
	--keep) keep=1 ;;
	*)
		usage >&2
		exit 2
		;;
	esac
done

step() { printf '\xe2\x96\xb6 %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
indent() { sed 's/^/    | /'; }
fail() {
	printf 'demo: FAILED: %s\n' "$*" >&2
	exit 1
}

cd "$(dirname "$0")/.."
root=$(pwd -P)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ck-demo.XXXXXX")
bin=$tmp/bin
work=$tmp/work
srv_pid=
pipe_pid=

cleanup() {
	status=$?
	trap - EXIT INT TERM
	if [ -n "$pipe_pid" ] && kill -0 "$pipe_pid" 2>/dev/null; then
		kill -TERM -- "-$pipe_pid" 2>/dev/null || true
		wait "$pipe_pid" 2>/dev/null || true
	fi
	if [ -n "$srv_pid" ]; then
		kill -TERM "$srv_pid" 2>/dev/null || true
		wait "$srv_pid" 2>/dev/null || true
	fi
	if [ "$keep" = 1 ]; then
		printf 'demo: kept %s\n' "$tmp" >&2
	else
		rm -rf "$tmp"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'printf "demo: interrupted\n" >&2; exit 130' INT
trap 'exit 143' TERM

# The pipeline, exactly as a user types it (the tools are found in $bin).
LINE='ckskip -c urls_check.txt urls.txt | ckfetch -sleep 100ms | ckmark urls_check.txt'

# start_line runs $LINE in $work, in the background, in its own process group
# (set -m), so that kill -INT -- -PID reaches every process of the pipeline,
# as Ctrl-C does in a terminal. Its stderr goes to $1.err; the exit statuses
# of the three tools go to $1.status.
start_line() {
	set -m
	(
		cd "$work"
		PATH=$bin:$PATH
		exec </dev/null >"$tmp/$1.out" 2>"$tmp/$1.err"
		set +e
		# PIPESTATUS must be read in the same eval as the pipeline.
		eval "$LINE"'; echo "${PIPESTATUS[*]}" >"$tmp/$1.status"'
	) &
	pipe_pid=$!
	set +m
}

# wait_line waits for the pipeline started by start_line, at most $1 seconds.
wait_line() {
	local i=0
	while kill -0 "$pipe_pid" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -le $(($1 * 10)) ] || fail "the pipeline did not end within $1 s"
		sleep 0.1
	done
	wait "$pipe_pid" 2>/dev/null || true
	pipe_pid=
}

# size_of prints a file's size in bytes (portable: no stat flags).
size_of() { wc -c <"$1" | tr -d ' '; }

# stats prints the JSON of the server's /_stats, fetched with bash's /dev/tcp
# (an HTTP/1.0 GET: the server closes the connection after the answer).
stats() {
	local line
	exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}" || fail "cannot connect to the test server at $addr"
	printf 'GET /_stats HTTP/1.0\r\nHost: %s\r\n\r\n' "$addr" >&3
	while IFS= read -r line <&3; do
		line=${line%$'\r'}
		[ -n "$line" ] || break
	done
	cat <&3
	exec 3<&-
}

# reset_stats clears the server's counters (GET /_reset).
reset_stats() {
	exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}" || fail "cannot connect to the test server at $addr"
	printf 'GET /_reset HTTP/1.0\r\nHost: %s\r\n\r\n' "$addr" >&3
	cat <&3 >/dev/null
	exec 3<&-
}

# url_stat prints "REQUESTS RANGED" for one path-and-query in a /_stats JSON
# ("0 0" when the server saw no request for it).
url_stat() {
	local json=$1 key=$2 hit
	hit=$(printf '%s\n' "$json" | grep -o '"[^"]*":{"requests":[0-9]*,"ranged":[0-9]*' |
		grep -F "\"$key\":" | head -n 1 || true)
	if [ -z "$hit" ]; then
		echo "0 0"
		return
	fi
	hit=${hit#*\"requests\":}
	echo "${hit%%,*} ${hit##*:}"
}

count_lines() { if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi; }

step "building ckskip, ckfetch, ckmark and the test server into $bin"
go build -o "$bin/" ./cmd/ckskip ./cmd/ckfetch ./cmd/ckmark ./scripts/testserver ||
	fail "go build failed (run it from the repository: $root)"

step "starting the test server (scripts/testserver) on 127.0.0.1"
"$bin/testserver" -portfile "$tmp/port" >"$tmp/server.out" 2>"$tmp/server.err" &
srv_pid=$!
for _ in $(seq 1 100); do
	[ ! -s "$tmp/port" ] || break
	kill -0 "$srv_pid" 2>/dev/null || fail "the test server exited: $(cat "$tmp/server.err")"
	sleep 0.1
done
[ -s "$tmp/port" ] || fail "the test server wrote no port file within 10 s"
addr=$(cat "$tmp/port")
base=http://$addr
# ckfetch's default (tree) layout: HOST:PORT/path?query, as wget -x; none of
# the paths and queries below holds a byte it would escape.
hostdir=$addr
info "serving at $base"

# The list: 30 URLs. Lines 10-12 are slow (40 kB at 16 kB/s, 2.5 s each), so
# the interrupt finds them in flight; lines 22 and 27 are slow too, left for
# the second run. Line 9 answers 503 once and then the file (a retry).
mkdir -p "$work"
queries=()
for i in $(seq 1 30); do
	case $i in
	5) q='f/empty?size=0' ;;
	9) q='f/flaky?size=5000&fail=1' ;;
	10 | 11 | 12 | 22 | 27) q=$(printf 'f/slow-%02d?size=40000&slow=16000' "$i") ;;
	16) q='f/big?size=2000000' ;;
	*) q=$(printf 'f/file-%02d?size=%d' "$i" $((i * 7919 % 60000 + 1))) ;;
	esac
	queries+=("$q")
done
for q in "${queries[@]}"; do printf '%s/%s\n' "$base" "$q"; done >"$work/urls.txt"
total=${#queries[@]}
step "wrote urls.txt in $work: $total URLs (first lines below)"
head -n 4 "$work/urls.txt" | indent
info "..."

# final_of and size_in print the output path (relative to $work) and the
# expected size of a path-and-query.
final_of() { printf '%s/%s' "$hostdir" "$1"; }
size_in() {
	local s=${1#*size=}
	echo "${s%%&*}"
}

# ---- Run 1, interrupted --------------------------------------------------
step "run 1, interrupted after about 2 s with SIGINT (what Ctrl-C sends):"
info "cd $work && $LINE"
start_line run1
for _ in $(seq 1 20); do
	kill -0 "$pipe_pid" 2>/dev/null || break
	sleep 0.1
done
# Wait on (bounded) until something is recorded, on a slow machine.
for _ in $(seq 1 80); do
	kill -0 "$pipe_pid" 2>/dev/null || break
	[ "$(count_lines "$work/urls_check.txt")" -eq 0 ] || break
	sleep 0.1
done
kill -0 "$pipe_pid" 2>/dev/null ||
	fail "run 1 ended before it could be interrupted (the slow URLs should have kept it going for over 5 s); its stderr: $(cat "$tmp/run1.err")"
kill -INT -- "-$pipe_pid"
wait_line 20
read -r st1_skip st1_fetch st1_mark <"$tmp/run1.status" || fail "run 1 left no exit statuses"
info "exit statuses: ckskip $st1_skip, ckfetch $st1_fetch, ckmark $st1_mark"
info "stderr of run 1:"
indent <"$tmp/run1.err"
[ "$st1_fetch" = 130 ] || fail "ckfetch exited $st1_fetch after SIGINT, want 130"
[ "$st1_mark" = 130 ] || [ "$st1_mark" = 0 ] || fail "ckmark exited $st1_mark after SIGINT, want 130 or 0"

ck1=$(count_lines "$work/urls_check.txt")
step "after run 1: $ck1 of $total lines in the checkpoint urls_check.txt (last 3 below)"
if [ "$ck1" -gt 0 ]; then tail -n 3 "$work/urls_check.txt" | indent; fi
[ "$ck1" -gt 0 ] || fail "run 1 recorded nothing in urls_check.txt in about 2 s"
[ "$ck1" -lt "$total" ] || fail "run 1 recorded every line before the interrupt; nothing was left to resume"
head -n "$ck1" "$work/urls.txt" | cmp -s - "$work/urls_check.txt" ||
	fail "after run 1, urls_check.txt is not the first $ck1 lines of urls.txt"

done1=()   # indices of the URLs whose final file exists after run 1
parts1=()  # indices of the URLs with a non-empty .part file after run 1
nparts=0
for i in $(seq 0 $((total - 1))); do
	q=${queries[$i]}
	f=$work/$(final_of "$q")
	if [ -f "$f" ]; then
		[ "$(size_of "$f")" = "$(size_in "$q")" ] ||
			fail "after run 1, $f has $(size_of "$f") bytes under its final name, want $(size_in "$q")"
		done1+=("$i")
	fi
	if [ -f "$f.part" ]; then
		nparts=$((nparts + 1))
		info "kept: $(final_of "$q").part ($(size_of "$f.part") of $(size_in "$q") bytes)"
		[ "$(size_of "$f.part")" -eq 0 ] || parts1+=("$i")
	fi
	if [ "$i" -lt "$ck1" ] && [ ! -f "$f" ]; then
		fail "urls_check.txt line $((i + 1)) is recorded but its file $f is missing"
	fi
done
info "files complete under their final names: ${#done1[@]} (checkpointed: $ck1; the others" \
	"wait behind an unfinished earlier line, which keeps the checkpoint in input order)"
info ".part files kept for resuming: $nparts"
info "the first files on disk (the tree layout, HOST:PORT/path?query):"
(cd "$work" && find "$hostdir" -type f | sort | sed -n 1,3p) | indent

# ---- Run 2, to the end ---------------------------------------------------
left=$("$bin/ckskip" -c "$work/urls_check.txt" "$work/urls.txt" | wc -l | tr -d ' ')
step "before run 2: ckskip prints $left of $total lines (the ones after the last checkpoint line)"
[ "$left" -lt "$total" ] || fail "ckskip prints $left lines, not fewer than the $total of the list"
[ "$left" -eq $((total - ck1)) ] ||
	fail "ckskip prints $left lines, want $((total - ck1)) ($total in the list, $ck1 in the checkpoint)"

reset_stats
step "run 2, the same line again:"
info "cd $work && $LINE"
start_line run2
wait_line 60
read -r st2_skip st2_fetch st2_mark <"$tmp/run2.status" || fail "run 2 left no exit statuses"
info "exit statuses: ckskip $st2_skip, ckfetch $st2_fetch, ckmark $st2_mark"
info "stderr of run 2:"
indent <"$tmp/run2.err"
[ "$st2_skip $st2_fetch $st2_mark" = "0 0 0" ] || fail "run 2 did not exit 0 0 0"

json=$(stats)
reqs=${json#*\"requests\":}
reqs=${reqs%%,*}
nurls=$(printf '%s\n' "$json" | grep -o '"/f/[^"]*":{"requests"' | wc -l | tr -d ' ')
step "the server saw $reqs requests for $nurls URLs in run 2"
redundant=0
for i in ${done1[@]+"${done1[@]}"}; do
	read -r n_req n_ranged <<<"$(url_stat "$json" "/${queries[$i]}")"
	if [ "$n_req" -ne 0 ]; then
		info "requested again although finished in run 1: ${queries[$i]} ($n_req requests)"
		redundant=$((redundant + 1))
	fi
done
[ "$redundant" -eq 0 ] || fail "run 2 downloaded $redundant files again that run 1 had finished"
info "files finished in run 1 and requested again: 0 of ${#done1[@]}"
for i in ${parts1[@]+"${parts1[@]}"}; do
	read -r n_req n_ranged <<<"$(url_stat "$json" "/${queries[$i]}")"
	[ "$n_ranged" -gt 0 ] || fail "the kept .part file of ${queries[$i]} was not resumed with a Range request"
	info "resumed with a Range request: ${queries[$i]}"
done

# ---- Final checks -----------------------------------------------------------
ck2=$(count_lines "$work/urls_check.txt")
step "after run 2: $ck2 lines in urls_check.txt"
cmp -s "$work/urls.txt" "$work/urls_check.txt" ||
	fail "urls_check.txt does not equal urls.txt line for line (diff: $(diff "$work/urls.txt" "$work/urls_check.txt" | head -n 5))"
info "urls_check.txt equals urls.txt line for line"
leftover=$(find "$work" -name '*.part*' | wc -l | tr -d ' ')
[ "$leftover" -eq 0 ] || fail "$leftover .part files are left after run 2"

# A clean download of the same bodies (the bytes depend only on the name and
# the size, not on slow= or fail=), to compare byte for byte.
for q in "${queries[@]}"; do printf '%s/%s\n' "$base" "${q%%&*}"; done |
	"$bin/ckfetch" -q -d "$tmp/ref" >/dev/null || fail "the reference download failed"
for q in "${queries[@]}"; do
	f=$work/$(final_of "$q")
	[ -f "$f" ] || fail "$f is missing after run 2"
	[ "$(size_of "$f")" = "$(size_in "$q")" ] || fail "$f has $(size_of "$f") bytes, want $(size_in "$q")"
	cmp -s "$f" "$tmp/ref/$(final_of "${q%%&*}")" || fail "$f does not have the server's bytes"
done
info "all $total files have the right size and the server's exact bytes; no .part file is left"
step "demo passed: run 1 recorded $ck1 lines, run 2 went on with the $left left and re-downloaded nothing"
