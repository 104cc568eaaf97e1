#!/usr/bin/env bash
# bench.sh: benchmark ckskip, ckmark and ckfetch against the usual tools, all
# in one run, interleaved, every run's output verified, ratios in a Markdown
# table. Only ratios from the same run mean anything: whole runs drift.
#
# What it does, in order: builds ./cmd/... and ./scripts/benchtools/... into
# a temporary directory; installs nginx, aria2, wget2, curl and time from
# Debian's packages when missing (as root; apt-get update once, only then);
# generates its data under a temporary directory on tmpfs (BENCH_SHM) and one
# on disk (BENCH_DISK, for ckmark: durability on tmpfs is free); starts nginx
# with its own config on a free 127.0.0.1 port; runs each benchmark's tools
# in turn for BENCH_ROUNDS rounds (the order rotates every round); takes the
# median time per tool; prints the table. A run with a non-zero exit status
# or wrong output is FAILED and never timed. An EXIT trap stops every process
# it started and removes its temporary directories.

usage() {
	cat <<'EOF'
usage: scripts/bench.sh [-h]
  Environment:
    BENCH_ROUNDS=3          rounds per benchmark (median per tool)
    BENCH_QUICK=1           every size 10x smaller, for a smoke run
    BENCH_OUT=FILE          also write the table to FILE
    BENCH_ONLY=LIST         comma-separated subset of: skip,set,grep,mark,small,big,rss,
                            hosts,hosts-tls,deadhosts (small also times the floor,
                            scripts/benchtools/barefetch: ckfetch's durability steps alone)
    BENCH_RSS_ROUNDS=1      rounds of the ckfetch RSS-vs-list-length runs (1M URLs is long)
  Many hosts with latency (hosts, hosts-tls, deadhosts; server: scripts/benchtools/latencyd):
    BENCH_RTT=20ms          round trip of the model network (ms or s, e.g. 100ms)
    BENCH_NET_J=256         downloads at once over all hosts, the same for every tool
    BENCH_NET_PER_HOST=4    downloads at once per host (for the tools that have such a limit)
    BENCH_NET_ROUNDS=N      rounds of these benchmarks (default: BENCH_ROUNDS)
    BENCH_NET_TOOLS=LIST    subset of: ck,wget2,aria2,curl,xargs (xargs -P curl starts one
                            process per URL: it runs on the first tenth of the list)
    BENCH_NET_TIMEOUT=1800  seconds one tool's run may take before it is stopped (FAILED)
    BENCH_SHM=/dev/shm      tmpfs for data, ckskip outputs and downloads
    BENCH_DISK=$TMPDIR|/tmp disk directory for ckmark's checkpoint (not tmpfs)
EOF
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

say() { printf 'bench: %s\n' "$*" >&2; }
die() {
	say "$*"
	exit 2
}
# fstype DIR: the type of the file system DIR is on (the last of stacked mounts).
fstype() { findmnt -n -o FSTYPE -T "$1" 2>/dev/null | tail -n 1 | grep . || stat -f -c %T "$1"; }

ROUNDS=${BENCH_ROUNDS:-3}
RSS_ROUNDS=${BENCH_RSS_ROUNDS:-1}
QUICK=${BENCH_QUICK:-0}
ONLY=${BENCH_ONLY:-skip,set,grep,mark,small,big,rss,hosts,hosts-tls,deadhosts}
NET_ROUNDS=${BENCH_NET_ROUNDS:-$ROUNDS}
NET_J=${BENCH_NET_J:-256}
NET_PER_HOST=${BENCH_NET_PER_HOST:-4}
NET_TIMEOUT=${BENCH_NET_TIMEOUT:-1800}
NET_TOOLS=${BENCH_NET_TOOLS:-ck,wget2,aria2,curl,xargs}
NET_RTT=${BENCH_RTT:-20ms}
for v in "$ROUNDS" "$RSS_ROUNDS" "$NET_ROUNDS" "$NET_J" "$NET_PER_HOST" "$NET_TIMEOUT"; do
	case $v in '' | *[!0-9]* | 0*) die "BENCH_ROUNDS, BENCH_RSS_ROUNDS, BENCH_NET_ROUNDS, BENCH_NET_J, BENCH_NET_PER_HOST and BENCH_NET_TIMEOUT must be positive integers, not '$v'" ;; esac
done
# NET_RTT_S: the round trip in seconds.
case $NET_RTT in
*ms) NET_RTT_S=${NET_RTT%ms} NET_RTT_S=$(awk -v v="$NET_RTT_S" 'BEGIN{print v/1000}') ;;
*s) NET_RTT_S=${NET_RTT%s} ;;
*) NET_RTT_S= ;;
esac
case $NET_RTT_S in '' | *[!0-9.]* | *.*.* | .) die "BENCH_RTT must be a duration in ms or s (20ms, 0.1s), not '$NET_RTT'" ;; esac
for t in ${NET_TOOLS//,/ }; do
	case $t in ck | wget2 | aria2 | curl | xargs) ;; *) die "BENCH_NET_TOOLS: unknown tool '$t' (want ck,wget2,aria2,curl,xargs)" ;; esac
done
want() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }

# Sizes; BENCH_QUICK divides them all by 10.
Q=1
[ "$QUICK" = 1 ] && Q=10
N_LIST=$((10000000 / Q))   # lines of the big list (68 bytes each)
N_GREP=$((1000000 / Q))    # lines of the list for the grep -Fxvf comparison
N_FSYNC=$((20000 / Q))     # lines for the write+fsync-per-line baseline
N_SMALL=$((20000 / Q))     # 4 KiB files
SMALL_SIZE=4096
N_BIG=8                    # big files
BIG_SIZE=$((64 * 1024 * 1024 / Q))
N_RSS_A=$((100000 / Q))    # URL list lengths for ckfetch's RSS
N_RSS_B=$((1000000 / Q))
N_NET_URLS=$((100000 / Q)) # URLs of 1-64 KiB for the many-hosts benchmarks
N_NET_HOSTS=$((1000 / Q))  # hosts (the shape, 100 URLs a host, stays the same)
N_DEAD_HOSTS=$((100000 / Q)) # hosts of the dead-hosts variant, one URL each
N_DEAD_LIVE=$((N_DEAD_HOSTS / 10)) # of which these answer; the others refuse connections
FLAT=1.25                  # "flat": RSS of the long run <= FLAT x RSS of the short one

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"

# ---- processes and temporary files, all undone by the EXIT trap ----
SHM_DIR=
DISK_DIR=
CHILD=
NGINX_PID=
LAT_PID=
cleanup() {
	local st=$?
	trap - EXIT INT TERM
	if [ -n "$CHILD" ]; then
		kill -TERM -- "-$CHILD" 2>/dev/null || true
		wait "$CHILD" 2>/dev/null || true
	fi
	if [ -n "$NGINX_PID" ]; then
		kill -TERM "$NGINX_PID" 2>/dev/null || true
		wait "$NGINX_PID" 2>/dev/null || true
	fi
	if [ -n "$LAT_PID" ]; then
		kill -TERM "$LAT_PID" 2>/dev/null || true
		wait "$LAT_PID" 2>/dev/null || true
	fi
	[ -z "$SHM_DIR" ] || rm -rf "$SHM_DIR"
	[ -z "$DISK_DIR" ] || rm -rf "$DISK_DIR"
	exit "$st"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- peers ----
need=()
command -v mawk >/dev/null || need+=(mawk)
[ -x /usr/bin/time ] || need+=(time)
if want small || want big || want rss; then
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
	command -v curl >/dev/null || need+=(curl)
	if want small || want big; then
		command -v aria2c >/dev/null || need+=(aria2)
		command -v wget2 >/dev/null || need+=(wget2)
	fi
fi
if want hosts || want hosts-tls || want deadhosts; then
	case ",$NET_TOOLS," in *,curl,* | *,xargs,*) command -v curl >/dev/null || case " ${need[*]-} " in *" curl "*) ;; *) need+=(curl) ;; esac ;; esac
	case ",$NET_TOOLS," in *,aria2,*) command -v aria2c >/dev/null || case " ${need[*]-} " in *" aria2 "*) ;; *) need+=(aria2) ;; esac ;; esac
	case ",$NET_TOOLS," in *,wget2,*) command -v wget2 >/dev/null || case " ${need[*]-} " in *" wget2 "*) ;; *) need+=(wget2) ;; esac ;; esac
fi
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || die "missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root"
	say "installing ${need[*]}"
	# Keep the packages' init scripts from starting a system nginx on port 80.
	policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
	fi
	rc=0
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >&2 || rc=$?
	[ -z "$policy" ] || rm -f "$policy"
	[ "$rc" = 0 ] || die "apt-get install ${need[*]} failed (status $rc)"
fi
PATH=$PATH:/usr/sbin
TIME=/usr/bin/time
"$TIME" -f %M true 2>/dev/null || die "$TIME is not GNU time (need -f)"

# ---- temporary directories ----
SHM_DIR=$(mktemp -d "${BENCH_SHM:-/dev/shm}/ckbench.XXXXXX")
DISK_DIR=$(mktemp -d "${BENCH_DISK:-${TMPDIR:-/tmp}}/ckbench.XXXXXX")
chmod 755 "$SHM_DIR" # nginx's worker runs as nobody
[ "$(fstype "$SHM_DIR")" = tmpfs ] || say "warning: $SHM_DIR is not tmpfs"
[ "$(fstype "$DISK_DIR")" != tmpfs ] || say "warning: $DISK_DIR is tmpfs: ckmark's fsyncs cost nothing there"
BIN=$DISK_DIR/bin
OUT=$SHM_DIR/out # every tool's output, removed before each run
q() { printf '%q' "$1"; }

say "building ck into $BIN"
go build -o "$BIN/" ./cmd/... ./scripts/benchtools/...

# ---- measuring ----
# in_group CMD...: starts CMD in the background in a process group of its
# own (CHILD is its pid and the group's id), for the EXIT trap to stop it
# whole. Not setsid: a session of its own would put the tool in another
# scheduler autogroup than latencyd and nginx (kernel.sched_autogroup_enabled),
# and the 2 cores were then shared group against group: latencyd's CPU
# doubled when it served the multi-threaded ckfetch (1.41 s for 10,000
# requests against 0.70 s) and not when it served curl, and ckfetch's wall
# time followed (1.95 s against 1.55 s).
in_group() {
	set -m
	"$@" &
	CHILD=$!
	set +m
}

# run_timed CMD: runs bash -c CMD in its own process group under GNU time; sets
# R_WALL (s), R_CPU (user+sys, s), R_RSS (peak KiB) and returns CMD's status.
run_timed() {
	local tf=$DISK_DIR/time.out t0 t1 rc=0 line
	t0=$EPOCHREALTIME
	in_group "$TIME" -f '%U %S %M' -o "$tf" bash -c "$1"
	wait "$CHILD" || rc=$?
	t1=$EPOCHREALTIME
	CHILD=
	line=$(tail -n 1 "$tf")
	R_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b-a}')
	R_CPU=$(echo "$line" | awk '{printf "%.3f", $1+$2}')
	R_RSS=$(echo "$line" | awk '{print $3}')
	R_FDS= R_THR= R_CONNS= R_HS= R_HOSTMAX= R_SCPU=
	return "$rc"
}

# run_stat CMD: as run_timed, under runstat (scripts/benchtools/runstat),
# with latencyd running; also sets R_FDS, R_THR (peaks over the command's
# processes), R_CONNS, R_HS (connections and TLS handshakes the server
# accepted during the run), R_HOSTMAX (most connections open at once on
# one host) and R_SCPU (the server's CPU seconds during the run). R_RSS is the larger of the biggest process's peak and the
# sampled peak of the sum over all processes (xargs -P curl).
run_stat() {
	local sf=$DISK_DIR/runstat.out rc=0 c0 h0 s0
	rm -f "$sf"
	lat_stats USR2
	c0=$L_CONNS h0=$L_HS s0=$L_CPU
	in_group "$BIN/runstat" -o "$sf" -timeout "${NET_TIMEOUT}s" -- bash -c "$1"
	wait "$CHILD" || rc=$?
	CHILD=
	lat_stats USR1
	local wall cpu maxrss sumrss fds thr
	if ! read -r wall cpu maxrss sumrss fds thr _ <"$sf"; then
		R_WALL=0 R_CPU=0 R_RSS=0 R_FDS= R_THR= R_CONNS= R_HS= R_HOSTMAX= R_SCPU=
		return "$((rc ? rc : 2))"
	fi
	R_WALL=$wall R_CPU=$cpu R_RSS=$((maxrss > sumrss ? maxrss : sumrss)) R_FDS=$fds R_THR=$thr
	R_CONNS=$((L_CONNS - c0)) R_HS=$((L_HS - h0)) R_HOSTMAX=$L_HOSTMAX
	R_SCPU=$(awk -v a="$s0" -v b="$L_CPU" 'BEGIN{printf "%.2f", b-a}')
	if [ "$rc" != 0 ] && [ -s "${NET_ERR-}" ]; then
		say "exit status $rc; the end of its stderr:"
		tail -n 3 "$NET_ERR" >&2
	fi
	rm -f "${NET_ERR-}"
	return "$rc"
}

declare -A CMD LABEL SHORT UNITS WALLS CPUS RSSS NFAIL NRUN WHY FAILOK FDSS THRS CONNSS HSS HOSTMAXS SCPUS
RUNNER=run_timed # how interleave runs a tool: run_timed, or run_stat (with latencyd)
# Each tool id has CMD[id] (a bash command), LABEL[id], UNITS[id] (items its
# rate counts), and optional functions prep_ID (untimed, before each run) and
# check_ID (after each successful run; non-zero or a message means wrong output).
# FAILOK[id]=1: an exit status of 1 to 123 is expected (some URLs fail for
# good); the output is still checked.

# interleave BENCH ROUNDS ID...: runs the tools alternately, the order rotated
# each round, and records every run.
interleave() {
	local bench=$1 rounds=$2 r i n id why rc
	shift 2
	n=$#
	local ids=("$@")
	for id in "${ids[@]}"; do
		WALLS[$id]= CPUS[$id]= RSSS[$id]= NFAIL[$id]=0 WHY[$id]= NRUN[$id]=$rounds
		FDSS[$id]= THRS[$id]= CONNSS[$id]= HSS[$id]= HOSTMAXS[$id]= SCPUS[$id]=
	done
	for ((r = 0; r < rounds; r++)); do
		for ((i = 0; i < n; i++)); do
			id=${ids[$(((i + r) % n))]}
			if declare -F "prep_$id" >/dev/null; then "prep_$id"; fi
			rc=0
			"$RUNNER" "${CMD[$id]}" || rc=$?
			why=
			if [ "$rc" != 0 ] && ! { [ "${FAILOK[$id]-}" = 1 ] && [ "$rc" -le 123 ]; }; then
				why="exit status $rc"
			elif declare -F "check_$id" >/dev/null; then
				why=$("check_$id" 2>&1) || why=${why:-wrong output}
			fi
			why=${why//$'\n'/; }
			if [ -n "$why" ]; then
				NFAIL[$id]=$((NFAIL[$id] + 1))
				WHY[$id]=$why
				say "$bench round $((r + 1))/$rounds ${LABEL[$id]}: FAILED: $why"
			else
				WALLS[$id]+=" $R_WALL"
				CPUS[$id]+=" $R_CPU"
				RSSS[$id]+=" $R_RSS"
				if [ -n "$R_FDS" ]; then
					FDSS[$id]+=" $R_FDS" THRS[$id]+=" $R_THR" CONNSS[$id]+=" $R_CONNS" HSS[$id]+=" $R_HS" HOSTMAXS[$id]+=" $R_HOSTMAX" SCPUS[$id]+=" $R_SCPU"
					say "$bench round $((r + 1))/$rounds ${LABEL[$id]}: ${R_WALL}s cpu ${R_CPU}s rss ${R_RSS}KiB fds $R_FDS threads $R_THR conns $R_CONNS tls $R_HS per-host $R_HOSTMAX server cpu ${R_SCPU}s$([ "$rc" = 0 ] || echo ", exit $rc (expected)")"
				else
					say "$bench round $((r + 1))/$rounds ${LABEL[$id]}: ${R_WALL}s cpu ${R_CPU}s rss ${R_RSS}KiB"
				fi
			fi
		done
	done
}

median() { echo "$*" | tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END{if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
maxof() { echo "$*" | tr ' ' '\n' | grep . | sort -g | tail -n 1; }
ok() { [ "${NFAIL[$1]-1}" = 0 ] && [ -n "${WALLS[$1]-}" ]; }
# rate ID: items per second from the median time.
rate() { awk -v u="${UNITS[$1]}" -v t="$(median ${WALLS[$1]})" 'BEGIN{printf "%.6g", u/t}'; }
# ratio A B: rate of A over rate of B ("" when either failed).
ratio() { if ok "$1" && ok "$2"; then awk -v a="$(rate "$1")" -v b="$(rate "$2")" 'BEGIN{printf "%.6g", a/b}'; fi; }
# x RATIO: a ratio for the table, "—" when there is none.
x() {
	if [ -z "$1" ]; then
		echo —
	else
		awk -v r="$1" 'BEGIN{if (r >= 100) f = "%.0f×"; else if (r >= 10) f = "%.1f×"; else if (r >= 0.01) f = "%.2f×"; else f = "%.2g×"; printf f, r}'
	fi
}
ge() { awk -v a="$1" -v b="$2" 'BEGIN{exit !(a+0 >= b+0)}'; }
rss_kib() { maxof ${RSSS[$1]}; }

ROWS=()
row() { # bench tool time rate cpu rss ratio target met
	local s='|' f
	for f in "$@"; do s+=" ${f//|/\\|} |"; done
	ROWS+=("$s")
}
# tool_row BENCH ID RATEFMT BASE [TARGET MIN]: a measured tool; ratio vs BASE.
tool_row() {
	local bench=$1 id=$2 fmt=$3 base=$4 target=${5-} min=${6-} r met=
	if ! ok "$id"; then
		row "$bench" "${LABEL[$id]}" "FAILED (${NFAIL[$id]}/${NRUN[$id]} runs): ${WHY[$id]}" "—" "—" "—" "—" "$target" "${target:+no}"
		return
	fi
	r=$(ratio "$id" "$base")
	if [ -n "$target" ]; then
		if [ -n "$r" ] && ge "$r" "$min"; then met=yes; else met=no; fi
	fi
	row "$bench" "${LABEL[$id]}" "$(printf '%.3f s' "$(median ${WALLS[$id]})")" \
		"$(fmt_rate "$(rate "$id")" "$fmt")" "$(printf '%.2f s' "$(median ${CPUS[$id]})")" \
		"$(awk -v k="$(rss_kib "$id")" 'BEGIN{printf "%.1f MiB", k/1024}')" "$(x "$r")" "$target" "$met"
}
fmt_rate() {
	case $2 in
	MB) awk -v r="$1" 'BEGIN{printf "%.0f MB/s", r/1e6}' ;;
	*) awk -v r="$1" -v u="$2" 'BEGIN{if (r >= 1e6) printf "%.2f M %s/s", r/1e6, u; else printf "%.0f %s/s", r, u}' ;;
	esac
}
# extra_row BENCH WHAT VALUE TARGET MET: a target that is not a rate ratio vs the baseline.
extra_row() { row "$1" "$2" "—" "—" "—" "—" "$3" "$4" "$5"; }

# ---- data ----
# gen_list N: N distinct URL-like lines of 68 bytes each.
gen_list() {
	mawk -v n="$1" 'BEGIN{for (i = 0; i < n; i++) printf "https://cdn%02d.example.org/archive/%010d/object-%010d.data\n", i % 64, i, (i * 7919) % 1000000007}'
}
LIST=$SHM_DIR/list.txt
if want skip || want set || want grep || want mark; then
	say "generating $N_LIST lines"
	gen_list "$N_LIST" >"$LIST"
	LIST_BYTES=$(stat -c %s "$LIST")
fi
HALF=$((N_LIST / 2))
fcmp() { cmp -- "$@" >/dev/null 2>&1 || { echo "output differs from the expected bytes"; return 1; }; }

# ---- ckskip, after mode ----
if want skip; then
	say "ckskip after mode"
	CK_AFTER=$SHM_DIR/ck-after.txt
	head -n "$HALF" "$LIST" >"$CK_AFTER"
	LIST10=$SHM_DIR/list10.txt CK_AFTER10=$SHM_DIR/ck-after10.txt
	head -n $((N_LIST / 10)) "$LIST" >"$LIST10"
	head -n $((N_LIST / 20)) "$LIST" >"$CK_AFTER10"
	prep_skip_cat() { rm -f "$OUT"; }
	prep_skip_ck() { rm -f "$OUT"; }
	prep_skip_ck10() { rm -f "$OUT"; }
	check_skip_cat() { fcmp "$LIST" "$OUT"; }
	check_skip_ck() { tail -n +$((HALF + 1)) "$LIST" | fcmp - "$OUT"; }
	check_skip_ck10() { tail -n +$((N_LIST / 20 + 1)) "$LIST10" | fcmp - "$OUT"; }
	CMD[skip_cat]="exec cat $(q "$LIST") > $(q "$OUT")"
	CMD[skip_ck]="exec $(q "$BIN/ckskip") -c $(q "$CK_AFTER") $(q "$LIST") > $(q "$OUT")"
	CMD[skip_ck10]="exec $(q "$BIN/ckskip") -c $(q "$CK_AFTER10") $(q "$LIST10") > $(q "$OUT")"
	LABEL[skip_cat]='`cat LIST > tmpfs` (baseline)'
	LABEL[skip_ck]='`ckskip -c CK LIST > tmpfs`'
	LABEL[skip_ck10]='ckskip on a 10× shorter list (memory check)'
	UNITS[skip_cat]=$LIST_BYTES UNITS[skip_ck]=$LIST_BYTES UNITS[skip_ck10]=$(stat -c %s "$LIST10")
	interleave skip "$ROUNDS" skip_cat skip_ck skip_ck10
	B="ckskip after: $N_LIST lines, $((LIST_BYTES / 1000000)) MB, checkpoint = first half"
	tool_row "$B" skip_cat MB skip_cat
	tool_row "$B" skip_ck MB skip_cat "≥ 0.7×" 0.7
	tool_row "$B" skip_ck10 MB -
	if ok skip_ck && ok skip_ck10; then
		g=$(awk -v a="$(rss_kib skip_ck)" -v b="$(rss_kib skip_ck10)" 'BEGIN{printf "%.2f", a/b}')
		met=no
		ge "$FLAT" "$g" && met=yes
		extra_row "$B" "ckskip RSS, full list ÷ 10× shorter" "$(x "$g")" "≤ ${FLAT}× (constant memory)" "$met"
	else
		extra_row "$B" "ckskip RSS, full list ÷ 10× shorter" "—" "≤ ${FLAT}× (constant memory)" no
	fi
	rm -f "$CK_AFTER" "$LIST10" "$CK_AFTER10" "$OUT"
fi

# set_bench NAME LISTFILE NLINES IDS...: ckskip --set and peers against a
# shuffled checkpoint of the odd lines of LISTFILE; the right output is the
# even lines, in order.
set_setup() {
	local list=$1
	SET_CK=$SHM_DIR/ck-set.txt
	mawk 'NR % 2 == 1' "$list" | shuf -o "$SET_CK"
	SET_LIST=$list
	SET_KEYS=$(wc -l <"$SET_CK")
	prep_set() { rm -f "$OUT"; }
	check_set() { mawk 'NR % 2 == 0' "$SET_LIST" | fcmp - "$OUT"; }
	for id in set_ck set_mawk set_grep; do
		eval "prep_$id() { prep_set; }; check_$id() { check_set; }"
	done
	CMD[set_ck]="exec $(q "$BIN/ckskip") --set -c $(q "$SET_CK") $(q "$list") > $(q "$OUT")"
	CMD[set_mawk]="exec mawk 'NR==FNR{s[\$0];next} !(\$0 in s)' $(q "$SET_CK") $(q "$list") > $(q "$OUT")"
	CMD[set_grep]="exec grep -Fxv -f $(q "$SET_CK") $(q "$list") > $(q "$OUT")"
	LABEL[set_ck]='`ckskip --set -c CK LIST`'
	LABEL[set_mawk]="\`mawk 'NR==FNR{s[\$0];next} !(\$0 in s)' CK LIST\` (baseline)"
	LABEL[set_grep]='`grep -Fxvf CK LIST`'
	SHORT[set_ck]='ckskip --set' SHORT[set_mawk]=mawk SHORT[set_grep]='grep -Fxvf'
	local n
	n=$(wc -l <"$list")
	UNITS[set_ck]=$n UNITS[set_mawk]=$n UNITS[set_grep]=$n
}
per_key() { awk -v k="$(rss_kib "$1")" -v n="$SET_KEYS" 'BEGIN{printf "%.0f", k*1024/n}'; }

if want set; then
	say "ckskip --set"
	set_setup "$LIST"
	interleave set "$ROUNDS" set_mawk set_ck
	B="ckskip --set: $N_LIST lines, $SET_KEYS-key checkpoint"
	tool_row "$B" set_mawk lines set_mawk
	tool_row "$B" set_ck lines set_mawk "≥ 20×" 20
	for id in set_mawk set_ck; do
		if ok "$id"; then
			v=$(per_key "$id")
			if [ "$id" = set_ck ]; then
				met=no
				[ "$v" -le 32 ] && met=yes
				extra_row "$B" "${SHORT[$id]}: RSS per checkpoint key" "$v B/key" "≤ 32 B/key" "$met"
			else
				extra_row "$B" "${SHORT[$id]}: RSS per checkpoint key" "$v B/key" "" ""
			fi
		fi
	done
	rm -f "$SET_CK" "$OUT"
fi

if want grep; then
	say "ckskip --set, mawk and grep -Fxvf on a shorter list"
	GLIST=$SHM_DIR/list-grep.txt
	head -n "$N_GREP" "$LIST" >"$GLIST"
	set_setup "$GLIST"
	interleave grep "$ROUNDS" set_mawk set_ck set_grep
	B="ckskip --set: $N_GREP lines, $SET_KEYS-key checkpoint (grep fits here)"
	tool_row "$B" set_mawk lines set_mawk
	tool_row "$B" set_ck lines set_mawk
	tool_row "$B" set_grep lines set_mawk
	for id in set_mawk set_ck set_grep; do
		ok "$id" && extra_row "$B" "${SHORT[$id]}: RSS per checkpoint key" "$(per_key "$id") B/key" "" ""
	done
	rm -f "$SET_CK" "$GLIST" "$OUT"
fi

# ---- ckmark ----
if want mark; then
	say "ckmark"
	MARK=$DISK_DIR/check.txt
	FLIST=$SHM_DIR/list-fsync.txt
	head -n "$N_FSYNC" "$LIST" >"$FLIST"
	prep_mark() { rm -f "$MARK" && sync; }
	prep_mark_cat() { prep_mark; }
	prep_mark_ck() { prep_mark; }
	prep_mark_fsync() { prep_mark; }
	check_mark_cat() { fcmp "$LIST" "$MARK"; }
	check_mark_ck() {
		local n
		n=$(wc -l <"$MARK")
		[ "$n" = "$N_LIST" ] || { echo "checkpoint has $n lines, want $N_LIST"; return 1; }
		fcmp "$LIST" "$MARK"
	}
	check_mark_fsync() { fcmp "$FLIST" "$MARK"; }
	CMD[mark_cat]="cat $(q "$LIST") | { cat >> $(q "$MARK") && sync $(q "$MARK"); }"
	CMD[mark_ck]="cat $(q "$LIST") | $(q "$BIN/ckmark") $(q "$MARK")"
	CMD[mark_fsync]="cat $(q "$FLIST") | $(q "$BIN/fsyncline") $(q "$MARK")"
	LABEL[mark_cat]='`cat | { cat >> CK && sync CK; }` (baseline)'
	LABEL[mark_ck]='`cat | ckmark CK`'
	LABEL[mark_fsync]="write+fsync per line ($N_FSYNC lines)"
	UNITS[mark_cat]=$N_LIST UNITS[mark_ck]=$N_LIST UNITS[mark_fsync]=$N_FSYNC
	interleave mark "$ROUNDS" mark_cat mark_ck mark_fsync
	B="ckmark: $N_LIST lines from a pipe to a checkpoint on $(fstype "$DISK_DIR")"
	tool_row "$B" mark_cat lines mark_cat
	tool_row "$B" mark_ck lines mark_cat "≥ 0.5×" 0.5
	tool_row "$B" mark_fsync lines mark_cat
	r=$(ratio mark_ck mark_fsync)
	met=no
	[ -n "$r" ] && ge "$r" 100 && met=yes
	extra_row "$B" "ckmark ÷ write+fsync per line" "$(x "$r")" "≥ 100×" "$met"
	rm -f "$MARK" "$FLIST"
fi

rm -f "$LIST"

# ---- ckfetch ----
if want small || want big || want rss; then
	WWW=$SHM_DIR/www
	mkdir -p "$WWW/s" "$WWW/b" "$WWW/e"
	: >"$WWW/e/x"
	NG=$DISK_DIR/nginx
	mkdir -p "$NG/tmp"
	chmod 755 "$DISK_DIR" "$NG"
	PORT=
	for try in 1 2 3 4 5 6 7 8 9 10; do
		p=$((20000 + RANDOM % 30000))
		if (: </dev/tcp/127.0.0.1/$p) 2>/dev/null; then continue; fi
		cat >"$NG/nginx.conf" <<EOF
# worker_processes 1: the 2 cores are shared between server and client.
worker_processes 1;
daemon off;
pid $NG/nginx.pid;
error_log $NG/error.log warn;
$([ "$(id -u)" = 0 ] && echo 'user nobody nogroup;')
events { worker_connections 4096; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 100000000;
	keepalive_timeout 60s;
	default_type application/octet-stream;
	client_body_temp_path $NG/tmp/body;
	proxy_temp_path $NG/tmp/proxy;
	fastcgi_temp_path $NG/tmp/fastcgi;
	uwsgi_temp_path $NG/tmp/uwsgi;
	scgi_temp_path $NG/tmp/scgi;
	server {
		listen 127.0.0.1:$p;
		root $WWW;
	}
}
EOF
		nginx -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log" &
		NGINX_PID=$!
		for i in $(seq 50); do
			if curl -fsS -o /dev/null "http://127.0.0.1:$p/e/x" 2>/dev/null; then
				PORT=$p
				break
			fi
			kill -0 "$NGINX_PID" 2>/dev/null || break
			sleep 0.1
		done
		[ -z "$PORT" ] || break
		kill -TERM "$NGINX_PID" 2>/dev/null || true
		wait "$NGINX_PID" 2>/dev/null || true
		NGINX_PID=
	done
	[ -n "$PORT" ] || die "nginx did not start: $(tail -n 3 "$NG/error.log" 2>/dev/null)"
	BASE=http://127.0.0.1:$PORT
	say "nginx $NGINX_PID on $BASE"
	CKFETCH=$(q "$BIN/ckfetch")
	ECHO=$SHM_DIR/echoed.txt

	# check_dl N BYTES SUM: OUT holds N files, BYTES in all, whose contents
	# concatenated in name order have cksum SUM, and nothing temporary.
	check_dl() {
		local n b s
		n=$(find "$OUT" -type f | wc -l)
		[ "$n" = "$1" ] || { echo "$n files, want $1"; return 1; }
		b=$(find "$OUT" -type f -printf '%s\n' | awk '{s+=$1} END{printf "%d", s}')
		[ "$b" = "$2" ] || { echo "$b bytes, want $2"; return 1; }
		s=$(find "$OUT" -type f -print0 | sort -z | xargs -0 -r cat | cksum)
		[ "$s" = "$3" ] || { echo "contents differ"; return 1; }
	}
	check_echo() { cmp -s "$1" "$ECHO" || { echo "echoed lines differ from the input ($(wc -l <"$ECHO") lines of $(wc -l <"$1"))"; return 1; }; }
	prep_dl() { rm -rf "$OUT" "$ECHO" && mkdir -p "$OUT"; }

	# fetch_tools NAME URLS J: defines NAME_ck, NAME_wget2, NAME_aria2, NAME_curl.
	fetch_tools() {
		local name=$1 urls=$2 j=$3 cfg=$SHM_DIR/$1.curl
		awk -v out="$OUT" '{n = split($0, p, "/"); printf "url = \"%s\"\noutput = \"%s/%s\"\n", $0, out, p[n]}' "$urls" >"$cfg"
		CMD[${name}_ck]="exec $CKFETCH -q -j $j --per-host $j -d $(q "$OUT") < $(q "$urls") > $(q "$ECHO")"
		CMD[${name}_wget2]="exec wget2 -q --no-config --max-threads=$j --no-robots --no-hsts --no-hpkp --no-cookies --no-netrc --no-metalink --no-tcp-fastopen --no-clobber -i $(q "$urls") -P $(q "$OUT")"
		CMD[${name}_aria2]="exec aria2c -q --no-conf -j $j -x 1 -i $(q "$urls") -d $(q "$OUT") --auto-file-renaming=false --allow-overwrite=true --file-allocation=none --deferred-input=true --console-log-level=error --summary-interval=0"
		# curl 7.88 draws its parallel progress meter even with -s: stderr to a file.
		CMD[${name}_curl]="exec curl -sS --fail --parallel --parallel-max $j -K $(q "$cfg") 2> $(q "$SHM_DIR/curl.err")"
		LABEL[${name}_ck]="\`ckfetch -q -j $j --per-host $j\`"
		LABEL[${name}_wget2]="\`wget2 --max-threads=$j\`"
		LABEL[${name}_aria2]="\`aria2c -j $j -x 1\`"
		LABEL[${name}_curl]="\`curl --parallel --parallel-max $j\`"
		local t
		for t in ck wget2 aria2 curl; do
			eval "prep_${name}_$t() { prep_dl; }"
		done
	}
	# fastest ID...: the id of the highest rate among those that passed.
	fastest() {
		local id best= br=0 r
		for id in "$@"; do
			ok "$id" || continue
			r=$(rate "$id")
			if ge "$r" "$br"; then best=$id br=$r; fi
		done
		echo "$best"
	}

	if want small; then
		say "ckfetch: $N_SMALL files of $SMALL_SIZE bytes"
		head -c $((N_SMALL * SMALL_SIZE)) /dev/urandom | split -b "$SMALL_SIZE" -a 5 -d - "$WWW/s/f"
		SMALL_SUM=$(cat "$WWW"/s/f* | cksum)
		URLS=$SHM_DIR/urls-small.txt
		(cd "$WWW/s" && ls) | sed "s|^|$BASE/s/|" >"$URLS"
		fetch_tools small "$URLS" 16
		check_small_ck() { check_echo "$URLS" && check_dl "$N_SMALL" $((N_SMALL * SMALL_SIZE)) "$SMALL_SUM"; }
		for t in wget2 aria2 curl; do
			eval "check_small_$t() { check_dl \"\$N_SMALL\" \$((N_SMALL * SMALL_SIZE)) \"\$SMALL_SUM\"; }"
			UNITS[small_$t]=$N_SMALL
		done
		UNITS[small_ck]=$N_SMALL
		# The floor, not a peer: the request's bytes and the response parse
		# as ckfetch's lean client has them, every durability step
		# ckfetch takes, and nothing else (scripts/benchtools/barefetch).
		CMD[small_bare]="exec $BIN/barefetch -j 16 -d $(q "$OUT") < $(q "$URLS")"
		LABEL[small_bare]="\`barefetch -j 16\` (the floor: ckfetch's durability steps, no ckfetch)"
		UNITS[small_bare]=$N_SMALL
		prep_small_bare() { prep_dl; }
		check_small_bare() { check_dl "$N_SMALL" $((N_SMALL * SMALL_SIZE)) "$SMALL_SUM"; }
		interleave small "$ROUNDS" small_wget2 small_ck small_aria2 small_curl small_bare
		B="ckfetch: $N_SMALL × 4 KiB from nginx to tmpfs, -j 16"
		tool_row "$B" small_wget2 req small_wget2
		tool_row "$B" small_ck req small_wget2 "≥ 1.2×" 1.2
		tool_row "$B" small_aria2 req small_wget2
		tool_row "$B" small_curl req small_wget2
		tool_row "$B" small_bare req small_wget2
		r=$(ratio small_ck small_curl)
		met=no
		[ -n "$r" ] && ge "$r" 1 && met=yes
		extra_row "$B" "ckfetch ÷ curl --parallel" "$(x "$r")" "≥ 1.0×" "$met"
		r=$(ratio small_ck small_aria2)
		met=no
		[ -n "$r" ] && ge "$r" 2 && met=yes
		extra_row "$B" "ckfetch ÷ aria2c" "$(x "$r")" "≥ 2×" "$met"
		for t in wget2 curl; do
			if ok small_ck && ok "small_$t"; then
				a=$(median ${CPUS[small_ck]}) b=$(median ${CPUS[small_$t]})
				met=no
				ge "$b" "$a" && met=yes
				extra_row "$B" "client CPU, ckfetch ÷ $t" "$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f×", a/b}')" "≤ 1.0×" "$met"
			else
				extra_row "$B" "client CPU, ckfetch ÷ $t" "—" "≤ 1.0×" no
			fi
		done
		f=$(fastest small_wget2 small_aria2 small_curl)
		[ -z "$f" ] || extra_row "$B" "fastest peer: ${LABEL[$f]}" "ckfetch ÷ it: $(x "$(ratio small_ck "$f")")" "" ""
		if ok small_ck && ok small_bare; then
			a=$(median ${CPUS[small_ck]}) b=$(median ${CPUS[small_bare]})
			extra_row "$B" "ckfetch ÷ the floor (barefetch): what ckfetch's own layers cost" \
				"$(x "$(ratio small_ck small_bare)"), client CPU $(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f×", a/b}')" "" ""
		fi
		rm -rf "$WWW/s" "$OUT" "$ECHO"
	fi

	if want big; then
		say "ckfetch: $N_BIG files of $BIG_SIZE bytes"
		head -c $((N_BIG * BIG_SIZE)) /dev/urandom | split -b "$BIG_SIZE" -a 1 -d - "$WWW/b/b"
		BIG_SUM=$(cat "$WWW"/b/b* | cksum)
		URLS=$SHM_DIR/urls-big.txt
		(cd "$WWW/b" && ls) | sed "s|^|$BASE/b/|" >"$URLS"
		fetch_tools big "$URLS" 4
		check_big_ck() { check_echo "$URLS" && check_dl "$N_BIG" $((N_BIG * BIG_SIZE)) "$BIG_SUM"; }
		for t in wget2 aria2 curl; do
			eval "check_big_$t() { check_dl \"\$N_BIG\" \$((N_BIG * BIG_SIZE)) \"\$BIG_SUM\"; }"
		done
		for t in ck wget2 aria2 curl; do UNITS[big_$t]=$((N_BIG * BIG_SIZE)); done
		interleave big "$ROUNDS" big_wget2 big_ck big_aria2 big_curl
		f=$(fastest big_wget2 big_aria2 big_curl)
		B="ckfetch: $N_BIG × $((BIG_SIZE / 1048576)) MiB from nginx to tmpfs, -j 4 (baseline: fastest peer)"
		for t in wget2 aria2 curl; do
			[ -n "$f" ] || f=big_$t
			tool_row "$B" "big_$t" MB "$f"
		done
		tool_row "$B" big_ck MB "$f" "≥ 0.9×" 0.9
		rm -rf "$WWW/b" "$OUT" "$ECHO"
	fi

	if want rss; then
		say "ckfetch RSS: $N_RSS_A and $N_RSS_B URLs"
		URLS_A=$SHM_DIR/urls-rss-a.txt URLS_B=$SHM_DIR/urls-rss-b.txt
		awk -v n="$N_RSS_A" -v b="$BASE" 'BEGIN{for (i = 0; i < n; i++) printf "%s/e/x?i=%d\n", b, i}' >"$URLS_A"
		awk -v n="$N_RSS_B" -v b="$BASE" 'BEGIN{for (i = 0; i < n; i++) printf "%s/e/x?i=%d\n", b, i}' >"$URLS_B"
		CMD[rss_a]="exec $CKFETCH -q -j 16 --per-host 16 -d $(q "$OUT") < $(q "$URLS_A") > $(q "$ECHO")"
		CMD[rss_b]="exec $CKFETCH -q -j 16 --per-host 16 -d $(q "$OUT") < $(q "$URLS_B") > $(q "$ECHO")"
		LABEL[rss_a]="ckfetch, $N_RSS_A URLs (empty files)"
		LABEL[rss_b]="ckfetch, $N_RSS_B URLs (empty files)"
		UNITS[rss_a]=$N_RSS_A UNITS[rss_b]=$N_RSS_B
		prep_rss_a() { prep_dl; }
		prep_rss_b() { prep_dl; }
		check_rss_a() { check_echo "$URLS_A" && check_dl "$N_RSS_A" 0 "$(cksum </dev/null)"; }
		check_rss_b() { check_echo "$URLS_B" && check_dl "$N_RSS_B" 0 "$(cksum </dev/null)"; }
		interleave rss "$RSS_ROUNDS" rss_a rss_b
		B="ckfetch RSS vs list length, -j 16"
		tool_row "$B" rss_a req rss_a
		tool_row "$B" rss_b req rss_a
		if ok rss_a && ok rss_b; then
			g=$(awk -v a="$(rss_kib rss_b)" -v b="$(rss_kib rss_a)" 'BEGIN{printf "%.2f", a/b}')
			met=no
			ge "$FLAT" "$g" && met=yes
			extra_row "$B" "RSS, $N_RSS_B ÷ $N_RSS_A URLs" "$(x "$g")" "≤ ${FLAT}× (flat)" "$met"
		else
			extra_row "$B" "RSS, $N_RSS_B ÷ $N_RSS_A URLs" "—" "≤ ${FLAT}× (flat)" no
		fi
		rm -rf "$OUT" "$ECHO" "$URLS_A" "$URLS_B"
	fi
fi

# ---- ckfetch over many hosts with latency (latencyd) ----
NROWS=()
NTARGETS=()
if want hosts || want hosts-tls || want deadhosts; then
	LAT_DIR=$DISK_DIR/latencyd
	mkdir -p "$LAT_DIR"
	LAT_CA=$LAT_DIR/ca.pem
	CKFETCH=$(q "$BIN/ckfetch")
	ECHO=$SHM_DIR/echoed.txt
	FAILED=$SHM_DIR/failed.txt
	NET_ERR=$SHM_DIR/net.err
	EMPTYDIRS=$SHM_DIR/emptydirs.txt
	LIMIT=$(awk -v j="$NET_J" -v t="$NET_RTT_S" 'BEGIN{printf "%.6g", j/t}')
	# curl has --parallel-max-host from 8.16 (applied in the normal loop only
	# after curl PR 21147, 2026); Debian 12 has 7.88.
	CURL_HOST=
	if curl --help all 2>/dev/null | grep -q -- --parallel-max-host; then CURL_HOST=" --parallel-max-host $NET_PER_HOST"; fi
	CURL_VERSION=$(curl --version 2>/dev/null | awk 'NR == 1 {print $2}')

	# lat_start ARGS...: starts latencyd serve with ARGS; sets LAT_PORT.
	lat_start() {
		rm -f "$LAT_DIR/ready" "$LAT_DIR/stats"
		"$BIN/latencyd" serve -rtt "$NET_RTT" -ready "$LAT_DIR/ready" -stats "$LAT_DIR/stats" -timeout 4h "$@" 2>>"$LAT_DIR/log" &
		LAT_PID=$! LAT_SEQ=0
		local i
		for ((i = 0; i < 600; i++)); do
			[ -s "$LAT_DIR/ready" ] && break
			kill -0 "$LAT_PID" 2>/dev/null || break
			sleep 0.05
		done
		[ -s "$LAT_DIR/ready" ] || die "latencyd did not start: $(tail -n 3 "$LAT_DIR/log")"
		LAT_PORT=$(cat "$LAT_DIR/ready")
		say "$(tail -n 1 "$LAT_DIR/log")"
	}
	lat_stop() {
		kill -TERM "$LAT_PID" 2>/dev/null || true
		wait "$LAT_PID" 2>/dev/null || true
		LAT_PID=
	}
	# lat_stats USR1|USR2: has latencyd write its statistics (USR2: and then
	# reset its maxima) and waits for them; sets L_CONNS, L_HS, L_HOSTMAX,
	# L_CPU (the server's CPU seconds since it started).
	lat_stats() {
		local i s=0
		kill -"$1" "$LAT_PID" 2>/dev/null || die "latencyd is gone: $(tail -n 3 "$LAT_DIR/log")"
		for ((i = 0; i < 1000; i++)); do
			s=$(awk '$1 == "seq" {print $2}' "$LAT_DIR/stats" 2>/dev/null || true)
			[ "${s:-0}" -gt "$LAT_SEQ" ] && break
			sleep 0.01
		done
		[ "${s:-0}" -gt "$LAT_SEQ" ] || die "latencyd wrote no statistics in 10 s"
		LAT_SEQ=$s
		read -r L_CONNS L_HS L_HOSTMAX L_CPU < <(awk '{v[$1] = $2} END {print v["conns"], v["tls_handshakes"], v["max_open_per_host"], v["cpu_s"]}' "$LAT_DIR/stats")
	}
	prep_net() { rm -rf "$OUT" "$ECHO" "$FAILED" && mkdir -p "$OUT"; }
	# verify_net URLS: OUT holds exactly the files of URLS, with the right bytes.
	verify_net() {
		local m
		m=$("$BIN/latencyd" verify -urls "$1" -dir "$OUT") || { echo "$m"; return 1; }
	}

	# net_tools NAME URLS TLS ONETRY: defines NAME_ck, NAME_wget2, NAME_aria2,
	# NAME_curl and NAME_xargs, all at NET_J downloads at once; with ONETRY=1
	# none retries (curl does not by default; wget2 retries a refused
	# connection 20 times, up to 10 s apart, which makes 90,000 dead hosts
	# take hours).
	net_tools() {
		local name=$1 urls=$2 tls=$3 onetry=$4 cfg=$SHM_DIR/$1.curl t
		local env_ck= ca_wget= ca_aria= ca_curl= try_ck= try_wget= try_aria=
		if [ "$onetry" = 1 ]; then
			try_ck=" --retries 0" try_wget=" --tries=1" try_aria=" --max-tries=1"
		fi
		if [ "$tls" = 1 ]; then
			env_ck="env SSL_CERT_FILE=$(q "$LAT_CA") "
			ca_wget=" --ca-certificate=$(q "$LAT_CA")"
			ca_aria=" --ca-certificate=$(q "$LAT_CA")"
			ca_curl=" --cacert $(q "$LAT_CA")"
		fi
		awk -v out="$OUT" '{n = split($0, p, "/"); printf "url = \"%s\"\noutput = \"%s/%s\"\n", $0, out, p[n]}' "$urls" >"$cfg"
		# stderr goes to NET_ERR (a dead host is a message per URL); run_stat
		# shows its end when a run fails.
		local e
		e="2> $(q "$NET_ERR")"
		CMD[${name}_ck]="exec $env_ck$CKFETCH -q -j $NET_J --per-host $NET_PER_HOST$try_ck --failed $(q "$FAILED") -d $(q "$OUT") < $(q "$urls") > $(q "$ECHO") $e"
		CMD[${name}_wget2]="exec wget2 -q --no-config --max-threads=$NET_J --no-robots --no-hsts --no-hpkp --no-ocsp --no-cookies --no-netrc --no-metalink --no-tcp-fastopen --no-clobber$try_wget$ca_wget -i $(q "$urls") -P $(q "$OUT") $e"
		CMD[${name}_aria2]="exec aria2c -q --no-conf -j $NET_J -x 1$try_aria$ca_aria -i $(q "$urls") -d $(q "$OUT") --auto-file-renaming=false --allow-overwrite=true --file-allocation=none --deferred-input=true --console-log-level=error --summary-interval=0 $e"
		CMD[${name}_curl]="exec curl -sS --fail --parallel --parallel-max $NET_J$CURL_HOST$ca_curl -K $(q "$cfg") $e"
		CMD[${name}_xargs]="cd $(q "$OUT") && exec xargs -P $NET_J -n 1 curl -sS --fail$ca_curl -O < $(q "$NET_XURLS") $e"
		LABEL[${name}_ck]="\`ckfetch -j $NET_J --per-host $NET_PER_HOST$try_ck\`"
		LABEL[${name}_wget2]="\`wget2 --max-threads=$NET_J$try_wget\` (no per-host limit)"
		LABEL[${name}_aria2]="\`aria2c -j $NET_J -x 1$try_aria\` (no per-host limit)"
		if [ -n "$CURL_HOST" ]; then
			LABEL[${name}_curl]="\`curl --parallel --parallel-max $NET_J$CURL_HOST\`"
		else
			LABEL[${name}_curl]="\`curl --parallel --parallel-max $NET_J\` (curl $CURL_VERSION has no --parallel-max-host)"
		fi
		LABEL[${name}_xargs]="\`xargs -P $NET_J -n 1 curl -O\` (no per-host limit; the first $(wc -l <"$NET_XURLS") URLs)"
		for t in ck wget2 aria2 curl xargs; do
			eval "prep_${name}_$t() { prep_net; }"
		done
	}

	# net_bench NAME TITLE TLS HOSTS LIVE: the tools over N_NET_URLS URLs on
	# HOSTS hosts, LIVE of which answer.
	net_bench() {
		local name=$1 title=$2 tls=$3 hosts=$4 live=$5 scheme=http t id
		[ "$tls" = 1 ] && scheme=https
		say "$name: $N_NET_URLS URLs over $hosts hosts ($live answer), round trip $NET_RTT, $scheme"
		if [ "$tls" = 1 ]; then
			lat_start -hosts "$hosts" -live "$live" -tls -ca "$LAT_CA"
		else
			lat_start -hosts "$hosts" -live "$live"
		fi
		NET_URLS=$SHM_DIR/urls-$name.txt NET_LIVE=$SHM_DIR/urls-$name-live.txt NET_DEAD=$SHM_DIR/urls-$name-dead.txt
		local u=("$BIN/latencyd" urls -hosts "$hosts" -live "$live" -urls "$N_NET_URLS" -port "$LAT_PORT" -scheme "$scheme")
		"${u[@]}" >"$NET_URLS"
		"${u[@]}" -which live >"$NET_LIVE"
		"${u[@]}" -which dead | sort >"$NET_DEAD"
		# xargs -P curl starts a process per URL: it gets a tenth of the list
		# (compared by rate), or a run would take most of an hour.
		NET_XURLS=$SHM_DIR/urls-$name-x.txt NET_XLIVE=$SHM_DIR/urls-$name-x-live.txt
		head -n $((N_NET_URLS / 10)) "$NET_URLS" >"$NET_XURLS"
		awk 'FILENAME == ARGV[1] {d[$0]; next} !($0 in d)' "$NET_DEAD" "$NET_XURLS" >"$NET_XLIVE"
		local onetry=0
		[ "$live" = "$hosts" ] || onetry=1
		net_tools "$name" "$NET_URLS" "$tls" "$onetry"
		eval "check_${name}_ck() { check_net_ck; }"
		for t in wget2 aria2 curl; do
			eval "check_${name}_$t() { verify_net \"\$NET_LIVE\"; }"
		done
		eval "check_${name}_xargs() { verify_net \"\$NET_XLIVE\"; }"
		local ids=()
		for t in ${NET_TOOLS//,/ }; do
			id=${name}_$t
			ids+=("$id")
			UNITS[$id]=$N_NET_URLS
			[ "$live" = "$hosts" ] || FAILOK[$id]=1
		done
		UNITS[${name}_xargs]=$(wc -l <"$NET_XURLS")
		: >"$EMPTYDIRS"
		RUNNER=run_stat
		interleave "$name" "$NET_ROUNDS" "${ids[@]}"
		RUNNER=run_timed
		lat_stop
		net_report "$name" "$title" "$tls" "$hosts" "$live" "${ids[@]}"
		rm -rf "$OUT" "$ECHO" "$FAILED" "$NET_URLS" "$NET_LIVE" "$NET_DEAD" "$NET_XURLS" "$NET_XLIVE" "$SHM_DIR/$name.curl"
	}
	# check_net_ck: ckfetch's files, its echo (the live lines in input
	# order) and its --failed file (exactly the dead lines).
	check_net_ck() {
		verify_net "$NET_LIVE" || return 1
		cmp -s "$NET_LIVE" "$ECHO" || { echo "echoed lines differ from the live input lines ($(wc -l <"$ECHO") lines of $(wc -l <"$NET_LIVE"))"; return 1; }
		if [ -s "$NET_DEAD" ]; then
			grep -v '^#' "$FAILED" | sort | cmp -s - "$NET_DEAD" || { echo "--failed holds $(grep -vc '^#' "$FAILED") lines, want the $(wc -l <"$NET_DEAD") dead ones"; return 1; }
		elif [ -s "$FAILED" ]; then
			echo "--failed is not empty: $(head -n 1 "$FAILED")"
			return 1
		fi
		find "$OUT" -mindepth 1 -type d -empty | wc -l >>"$EMPTYDIRS"
	}

	# net_report NAME TITLE TLS HOSTS LIVE IDS...: rows of the many-hosts table.
	net_report() {
		local name=$1 title=$2 tls=$3 hosts=$4 live=$5 id best= br=0 r lim f
		shift 5
		for id in "$@"; do
			[ "$id" != "${name}_ck" ] && ok "$id" || continue
			r=$(rate "$id")
			if ge "$r" "$br"; then best=$id br=$r; fi
		done
		for id in "$@"; do
			if ! ok "$id"; then
				nrow "$title" "${LABEL[$id]}" "FAILED (${NFAIL[$id]}/${NRUN[$id]} runs): ${WHY[$id]}" — — — — — — — — — —
				continue
			fi
			lim=—
			[ "$live" = "$hosts" ] && lim=$(x "$(awk -v a="$(rate "$id")" -v b="$LIMIT" 'BEGIN{printf "%.6g", a/b}')")
			f=$(median ${CONNSS[$id]})
			[ "$tls" = 1 ] && f="$f ($(median ${HSS[$id]}))"
			nrow "$title" "${LABEL[$id]}" "$(printf '%.2f s' "$(median ${WALLS[$id]})")" \
				"$(fmt_rate "$(rate "$id")" req)" "$lim" "$(x "$([ -n "$best" ] && ratio "$id" "$best")")" \
				"$(printf '%.2f s' "$(median ${CPUS[$id]})")" \
				"$(awk -v k="$(rss_kib "$id")" 'BEGIN{printf "%.1f MiB", k/1024}')" \
				"$(maxof ${FDSS[$id]})" "$(maxof ${THRS[$id]})" "$f" "$(maxof ${HOSTMAXS[$id]})" \
				"$(printf '%.2f s' "$(median ${SCPUS[$id]})")"
		done
		local ck=${name}_ck met v
		ok "$ck" || { [ -z "${CMD[$ck]-}" ] || ntarget "$title" "ckfetch" "FAILED" "" ""; return 0; }
		if [ -n "$best" ]; then
			ntarget "$title" "fastest peer" "${LABEL[$best]}" "" ""
			if [ "$live" = "$hosts" ]; then
				v=$(ratio "$ck" "$best")
				if ge "$NET_RTT_S" 0.1; then
					ntarget "$title" "ckfetch ÷ fastest peer, requests/s" "$(x "$v")" "" ""
				else
					met=no
					ge "$v" 1.2 && met=yes
					ntarget "$title" "ckfetch ÷ fastest peer, requests/s" "$(x "$v")" "≥ 1.2× (at 20 ms)" "$met"
				fi
			fi
			v=$(awk -v a="$(median ${CPUS[$ck]})" -v b="$(median ${CPUS[$best]})" 'BEGIN{printf "%.6g", a/b}')
			met=no
			ge 1 "$v" && met=yes
			ntarget "$title" "client CPU, ckfetch ÷ fastest peer (same requests)" "$(x "$v")" "≤ 1.0×" "$met"
		fi
		if [ "$live" = "$hosts" ]; then
			v=$(awk -v a="$(rate "$ck")" -v b="$LIMIT" 'BEGIN{printf "%.6g", a/b}')
			if ge "$NET_RTT_S" 0.1; then
				met=no
				ge "$v" 0.9 && met=yes
				ntarget "$title" "ckfetch × physical limit ($(fmt_rate "$LIMIT" req))" "$(x "$v")" "≥ 0.9× (at 100 ms)" "$met"
			else
				ntarget "$title" "ckfetch × physical limit ($(fmt_rate "$LIMIT" req))" "$(x "$v")" "" ""
			fi
			v=$(awk -v c="$(median ${CONNSS[$ck]})" -v h="$hosts" -v p="$NET_PER_HOST" 'BEGIN{printf "%.6g", c/(h*p)}')
			met=no
			ge 1.25 "$v" && met=yes
			ntarget "$title" "ckfetch connections ÷ (hosts × --per-host = $((hosts * NET_PER_HOST)))" "$(x "$v")" "≈ 1× (≤ 1.25×)" "$met"
		else
			v=$(sort -g "$EMPTYDIRS" | tail -n 1)
			met=no
			[ "${v:-1}" = 0 ] && met=yes
			ntarget "$title" "empty directories ckfetch left" "${v:-—}" "0" "$met"
		fi
		v=$(maxof ${FDSS[$ck]})
		met=no
		[ "$v" -le $((2 * NET_J + 64)) ] && met=yes
		ntarget "$title" "ckfetch peak descriptors" "$v" "≤ 2 × $NET_J + 64" "$met"
	}
	nrow() {
		local s='|' f
		for f in "$@"; do s+=" ${f//|/\\|} |"; done
		NROWS+=("$s")
	}
	ntarget() {
		local s='|' f
		for f in "$@"; do s+=" ${f//|/\\|} |"; done
		NTARGETS+=("$s")
	}

	if want hosts; then
		net_bench hosts "$N_NET_URLS URLs of 1–64 KiB over $N_NET_HOSTS hosts, http" 0 "$N_NET_HOSTS" "$N_NET_HOSTS"
	fi
	if want hosts-tls; then
		net_bench hosts_tls "$N_NET_URLS URLs of 1–64 KiB over $N_NET_HOSTS hosts, https" 1 "$N_NET_HOSTS" "$N_NET_HOSTS"
	fi
	if want deadhosts; then
		net_bench deadhosts "$N_NET_URLS URLs over $N_DEAD_HOSTS hosts, one each, $N_DEAD_LIVE answer and the others refuse connections" 0 "$N_DEAD_HOSTS" "$N_DEAD_LIVE"
	fi
	if want hosts && want deadhosts && ok hosts_ck && ok deadhosts_ck; then
		v=$(awk -v a="$(rss_kib deadhosts_ck)" -v b="$(rss_kib hosts_ck)" 'BEGIN{printf "%.6g", a/b}')
		met=no
		ge "$FLAT" "$v" && met=yes
		ntarget "ckfetch RSS" "$N_DEAD_HOSTS hosts (deadhosts) ÷ $N_NET_HOSTS hosts (hosts)" "$(x "$v")" "≤ ${FLAT}×" "$met"
	fi
fi

# ---- report ----
{
	cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
	echo "Machine: $(nproc) cores ($cpu), Linux $(uname -r); $ROUNDS rounds per benchmark (ckfetch RSS: $RSS_ROUNDS), tools interleaved$([ "$Q" = 10 ] && echo ', BENCH_QUICK (sizes ÷ 10)')."
	echo
	if [ ${#ROWS[@]} -gt 0 ]; then
		echo "| benchmark | tool | median time | rate | CPU (user+sys) | peak RSS | ratio vs baseline | target | met? |"
		echo "|---|---|---|---|---|---|---|---|---|"
		prev=
		for r in "${ROWS[@]}"; do
			b=${r#| }
			b=${b%% | *}
			if [ "$b" = "$prev" ]; then
				echo "| |${r#"| $b |"}"
			else
				echo "$r"
			fi
			prev=$b
		done
		echo
		echo "Notes: times are medians over the rounds, RSS the maximum, rates are computed from the median time; ratios are this tool's rate ÷ the baseline's (the first row of each benchmark unless said otherwise). Only ratios within one run mean anything. A run with a non-zero exit status or wrong output is FAILED, never timed: every run's output is checked (ckskip: cmp with the expected lines; ckmark: line count and cmp with the input; downloads: file count, total bytes, cksum of the contents, and for ckfetch the echoed lines = the input). ckfetch fsyncs every file and its directory before echoing it; wget2, aria2c and curl never fsync. Downloads go to tmpfs (ext4 file creation here varies 0.5–8 s per 20k files). nginx: worker_processes 1, sendfile, access_log off, keepalive_requests 100000000. ckmark's checkpoint is on $(fstype "$DISK_DIR") (${BENCH_DISK:-${TMPDIR:-/tmp}}); the per-line fsync baseline runs on $N_FSYNC lines and is compared by rate."
	fi
	if [ ${#NROWS[@]} -gt 0 ]; then
		echo
		echo "Many hosts with latency (scripts/benchtools/latencyd on 127.x.y.z addresses): round trip $NET_RTT, $NET_J downloads at once over all hosts and $NET_PER_HOST per host for the tools that have such a limit, rounds: $NET_ROUNDS (medians), tools interleaved. Physical limit: $NET_J ÷ $NET_RTT = $(fmt_rate "$LIMIT" req)."
		echo
		echo "| benchmark | tool | median time | rate | × physical limit | ÷ fastest peer | CPU (user+sys) | peak RSS | peak descriptors | peak threads | connections (TLS handshakes) | most connections on one host | server CPU |"
		echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
		prev=
		for r in "${NROWS[@]}"; do
			b=${r#| }
			b=${b%% | *}
			if [ "$b" = "$prev" ]; then echo "| |${r#"| $b |"}"; else echo "$r"; fi
			prev=$b
		done
		echo
		echo "| benchmark | what | value | target | met? |"
		echo "|---|---|---|---|---|"
		prev=
		for r in "${NTARGETS[@]}"; do
			b=${r#| }
			b=${b%% | *}
			if [ "$b" = "$prev" ]; then echo "| |${r#"| $b |"}"; else echo "$r"; fi
			prev=$b
		done
		echo
		echo "Notes: the server adds one round trip to every new connection and one before every response (and TLS handshake flight): a request costs 1 round trip on a kept-alive connection, 2 on a new one, 3 on a new TLS one (TLS 1.3, HTTP/1.1 only). Rates count every URL of the list (for deadhosts, failures too) over the median time; every run's files are checked byte for byte against what the server sent (latencyd verify), ckfetch's echo against the live lines in input order and its --failed file against the dead ones. CPU is user+sys of the tool and every process it waited for; peak RSS the largest process's or the sampled sum over all of them (xargs), peak descriptors and threads are sums over the tool's processes sampled from /proc every 10 ms (scripts/benchtools/runstat); connections, TLS handshakes, the most connections open at once on one host and the server's CPU are counted at the server (medians, except the peaks). deadhosts: one try per URL for every tool (ckfetch --retries 0, wget2 --tries=1, aria2c --max-tries=1; curl does not retry by default): by default wget2 retries a refused connection 20 times up to 10 s apart (3 min 10 s for one dead URL here) and ckfetch 5 times with backoff from 1 s, so 90,000 dead hosts would measure the waits. Client and server share the machine's $(nproc) cores."
	fi
} >"$DISK_DIR/table.md"
cat "$DISK_DIR/table.md"
[ -z "${BENCH_OUT-}" ] || cp "$DISK_DIR/table.md" "$BENCH_OUT"
