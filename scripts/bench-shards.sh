#!/usr/bin/env bash
# bench-shards.sh: does splitting a list into shards cost anything? Runs the
# same list against the latency-model server (scripts/benchtools/latencyd)
# as 1, 2 and 4 shards in parallel, each shard its own
#
#     ckskip --shard K/N -c check-K.txt urls.txt | ckfetch -j J/N -d out | ckmark check-K.txt
#
# with the same concurrency over all shards (J downloads at once, split
# evenly), and prints the total rate of each split as a ratio to one shard,
# in one run, the splits interleaved over BENCH_ROUNDS rounds (median).
# Every run is checked: every checkpoint whole (ckskip prints nothing) and
# every file exact (latencyd verify); a run that fails a check is FAILED,
# not timed. Needs Go and python3; 127.0.0.1 only. An EXIT trap stops the
# server and removes the temporary directory.
#
# Environment: BENCH_ROUNDS=3, BENCH_URLS=20000 (1–64 KiB each), BENCH_HOSTS=200,
# BENCH_RTT=20ms, BENCH_J=256, BENCH_OUT=FILE (also write the table there).

usage() {
	sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
}

set -eu
set -o pipefail
export LC_ALL=C

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

say() { printf 'bench-shards: %s\n' "$*" >&2; }
die() {
	say "$*"
	exit 2
}

ROUNDS=${BENCH_ROUNDS:-3}
URLS=${BENCH_URLS:-20000}
HOSTS=${BENCH_HOSTS:-200}
RTT=${BENCH_RTT:-20ms}
J=${BENCH_J:-256}
for v in "$ROUNDS" "$URLS" "$HOSTS" "$J"; do
	case $v in '' | *[!0-9]* | 0*) die "BENCH_ROUNDS, BENCH_URLS, BENCH_HOSTS and BENCH_J must be positive integers, not '$v'" ;; esac
done
[ $((J % 4)) = 0 ] || die "BENCH_J must be a multiple of 4 (it is split over 4 shards)"

cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${BENCH_SHM:-/dev/shm}/ck-bench-shards.XXXXXX" 2>/dev/null || mktemp -d "${TMPDIR:-/tmp}/ck-bench-shards.XXXXXX")
lat_pid=
cleanup() {
	status=$?
	trap - EXIT INT TERM
	if [ -n "$lat_pid" ]; then
		kill -TERM "$lat_pid" 2>/dev/null || true
		wait "$lat_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "building the tools and latencyd"
go build -o "$tmp/bin/" ./cmd/ckskip ./cmd/ckfetch ./cmd/ckmark ./scripts/benchtools/latencyd
bin=$tmp/bin

"$bin/latencyd" serve -hosts "$HOSTS" -rtt "$RTT" -ready "$tmp/ready" -timeout 2h 2>"$tmp/lat.log" &
lat_pid=$!
for _ in $(seq 600); do
	[ -s "$tmp/ready" ] && break
	kill -0 "$lat_pid" 2>/dev/null || break
	sleep 0.05
done
[ -s "$tmp/ready" ] || die "latencyd did not start: $(tail -n 3 "$tmp/lat.log")"
"$bin/latencyd" urls -hosts "$HOSTS" -urls "$URLS" -port "$(cat "$tmp/ready")" >"$tmp/urls.txt"

# run N: the list as N shards in parallel into a fresh directory; prints
# the seconds it took, or fails.
run() {
	local n=$1 w=$tmp/run k pids=() start end
	rm -rf "$w" && mkdir -p "$w/out"
	start=$(date +%s.%N)
	for ((k = 0; k < n; k++)); do
		"$bin/ckskip" --shard "$k/$n" -c "$w/check-$k.txt" "$tmp/urls.txt" |
			"$bin/ckfetch" -q -j $((J / n)) -d "$w/out" --failed "$w/failed-$k.txt" |
			"$bin/ckmark" "$w/check-$k.txt" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || {
			say "FAILED: a pipeline of the $n-shard run exited $?"
			return 1
		}
	done
	end=$(date +%s.%N)
	for ((k = 0; k < n; k++)); do
		[ -z "$("$bin/ckskip" --shard "$k/$n" -c "$w/check-$k.txt" "$tmp/urls.txt")" ] ||
			{ say "FAILED: shard $k/$n left lines undone"; return 1; }
	done
	"$bin/latencyd" verify -urls "$tmp/urls.txt" -dir "$w/out" >/dev/null ||
		{ say "FAILED: the $n-shard run's files are not exact"; return 1; }
	awk -v s="$start" -v e="$end" 'BEGIN {printf "%.3f\n", e - s}'
}

splits=(1 2 4)
for ((r = 0; r < ROUNDS; r++)); do
	for ((i = 0; i < ${#splits[@]}; i++)); do
		n=${splits[$(((i + r) % ${#splits[@]}))]}
		t=$(run "$n") || exit 1
		say "round $((r + 1))/$ROUNDS, $n shard(s): $t s"
		echo "$n $t" >>"$tmp/times"
	done
done

table=$(python3 - "$tmp/times" "$URLS" "$HOSTS" "$RTT" "$J" <<'EOF'
import statistics, sys
times = {}
for line in open(sys.argv[1]):
    n, t = line.split()
    times.setdefault(int(n), []).append(float(t))
urls, hosts, rtt, j = int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
med = {n: statistics.median(ts) for n, ts in times.items()}
print(f"{urls} URLs of 1–64 KiB over {hosts} hosts, {rtt} round trip, {j} downloads at once over all shards, {len(times[1])} rounds (median):")
print()
print("| shards | ckfetch -j per shard | median time | total rate | ÷ one shard |")
print("|---|---|---|---|---|")
for n in sorted(med):
    print(f"| {n} | {j // n} | {med[n]:.2f} s | {urls / med[n]:.0f} req/s | {med[1] / med[n]:.2f}× |")
EOF
)
printf '%s\n' "$table"
if [ -n "${BENCH_OUT-}" ]; then printf '%s\n' "$table" >"$BENCH_OUT"; fi
