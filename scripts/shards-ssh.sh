#!/usr/bin/env bash
# shards-ssh.sh: run the README's GNU parallel recipe for real, over three
# ssh "hosts" on this machine, kill one of them in the middle, and check that
# the sharded run still ends exact:
#
#     seq 0 7 | parallel -j1 --sshloginfile hosts.txt --retries 3 ... \
#       'ckskip --shard {}/8 -c check-{}.txt urls.txt | ckfetch -d out ... | ckmark check-{}.txt'
#
# What it does, in order: installs openssh-server and parallel from Debian's
# packages when missing (as root; apt-get update first); builds the three
# tools and the test server (scripts/testserver) into a temporary directory;
# starts the test server and three sshd, each on its own free 127.0.0.1 port
# with its own host key, a key of its own for the client and PATH set to the
# tools (sshd_config SetEnv); writes urls.txt (URL<TAB>PATH lines, slow
# bodies, so the run takes some seconds); runs the recipe with parallel
# distributing 8 shards over the three hosts into one shared output
# directory; once host 2 is running a shard that has checkpointed a line,
# kills host 2 (its sshd and everything it runs, SIGKILL); parallel --retries
# runs that shard again on another host. The checks, each a FAILED message
# and exit 1 when it does not hold:
#   - parallel exits 0, and host 2 really ran a shard and was killed in it;
#   - every shard's checkpoint is whole: ckskip --shard K/8 -c check-K.txt
#     prints nothing, and no line is in two checkpoints or twice in one;
#   - every file has the server's exact bytes (compared with a reference
#     download made after the run, once the request counts are read, of
#     the same URL without its slow pace);
#   - every URL was requested at least once, and the requests beyond one per
#     URL are at most the killed shard's in-flight lines (-j of its ckfetch)
#     plus its lines done but not yet checkpointed (counted from the server's
#     statistics).
# Then it does it all again with ckfetch -d s3://BUCKET/shards into a real
# S3 server (SeaweedFS, started by scripts/s3server.sh; a WARNING, and only
# the first run, where it cannot start): the same checks, the files read
# back from the bucket with signed GETs, and no multipart upload left open.
# It exits 0 with a WARNING line and checks nothing when it cannot install or
# start sshd (not root, no apt): say so loudly rather than pretend. An EXIT
# trap stops every process it started and removes the temporary directory
# (unless --keep). Network: 127.0.0.1 only.

usage() {
	cat <<'EOF'
usage: scripts/shards-ssh.sh [--keep] [-h]
  --keep   keep the temporary directory and print its path
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
fail() {
	printf 'shards-ssh: FAILED: %s\n' "$*" >&2
	exit 1
}
skip() {
	printf 'shards-ssh: WARNING: %s: THE SHARDED RUN OVER SSH IS NOT TESTED\n' "$*" >&2
	exit 0
}

cd "$(dirname "$0")/.."
root=$(pwd -P)

need=()
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
command -v parallel >/dev/null || need+=(parallel)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		skip "missing ${need[*]} and cannot install them (not root, or no apt-get)"
	fi
	step "installing ${need[*]} from Debian's packages"
	apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
		skip "apt-get install ${need[*]} failed"
fi
sshd_bin=$(command -v sshd || echo /usr/sbin/sshd)
[ "$(id -u)" = 0 ] || skip "sshd needs root here (privilege separation)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ck-shards.XXXXXX")
chmod 755 "$tmp"
bin=$tmp/bin
work=$tmp/work
pids=()

stop_s3() { :; }
cleanup() {
	status=$?
	trap - EXIT INT TERM
	stop_s3
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [ "$keep" = 1 ]; then
		info "kept $tmp"
	else
		rm -rf "$tmp"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# freeport: a free TCP port on 127.0.0.1.
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# descendants PID: every process under PID, deepest first.
descendants() {
	local c
	for c in $(pgrep -P "$1" || true); do
		descendants "$c"
		echo "$c"
	done
}

step "building the tools and the test server"
mkdir -p "$bin" "$work"
go build -o "$bin/" ./cmd/ckskip ./cmd/ckfetch ./cmd/ckmark ./scripts/testserver

step "starting the test server"
"$bin/testserver" -portfile "$tmp/srv.addr" >/dev/null &
pids+=($!)
for _ in $(seq 200); do [ -s "$tmp/srv.addr" ] && break; sleep 0.05; done
[ -s "$tmp/srv.addr" ] || fail "the test server did not start"
base=http://$(cat "$tmp/srv.addr")

# The second run writes into a bucket of a real S3 server (SeaweedFS,
# scripts/s3server.sh). Where it cannot run, the first run still does.
s3=0
s3status=0
bash scripts/s3server.sh start "$tmp/s3" >"$tmp/s3.out" 2>&1 || s3status=$?
case $s3status in
0)
	s3=1
	stop_s3() { bash scripts/s3server.sh stop "$tmp/s3" >/dev/null 2>&1 || true; }
	# shellcheck disable=SC1091
	. "$tmp/s3/s3.env"
	info "S3 server (SeaweedFS) at $S3_ENDPOINT, bucket $S3_BUCKET"
	;;
3) printf 'shards-ssh: WARNING: no S3 server here (%s): THE SHARDED RUN INTO S3 IS NOT TESTED\n' "$(tail -n 1 "$tmp/s3.out")" >&2 ;;
*) fail "scripts/s3server.sh start exited $s3status: $(tail -n 3 "$tmp/s3.out")" ;;
esac

step "starting three sshd on 127.0.0.1, each with its own host key"
mkdir -p /run/sshd "$tmp/ssh"
chmod 700 "$tmp/ssh"
ssh-keygen -q -t ed25519 -N '' -f "$tmp/ssh/client" -C ck-shards
cp "$tmp/ssh/client.pub" "$tmp/ssh/authorized_keys"
: >"$tmp/ssh/config"
sshd_pids=()
# start_sshd H: starts host H's sshd (again, after it was killed).
start_sshd() {
	"$sshd_bin" -D -e -f "$tmp/ssh/sshd$1.conf" 2>>"$tmp/ssh/sshd$1.log" &
	sshd_pids[$(($1 - 1))]=$!
	pids+=($!)
}
# wait_login H: waits until host H takes a login.
wait_login() {
	local ok=
	for _ in $(seq 100); do
		if ssh -F "$tmp/ssh/config" "host$1" true 2>/dev/null; then
			ok=1
			break
		fi
		sleep 0.1
	done
	[ -n "$ok" ] || skip "sshd host$1 did not take a login ($(tail -n 3 "$tmp/ssh/sshd$1.log" | tr '\n' ' '))"
}
for h in 1 2 3; do
	ssh-keygen -q -t ed25519 -N '' -f "$tmp/ssh/host$h" -C "host$h"
	port=$(freeport)
	cat >"$tmp/ssh/sshd$h.conf" <<EOF
ListenAddress 127.0.0.1:$port
HostKey $tmp/ssh/host$h
PidFile $tmp/ssh/sshd$h.pid
AuthorizedKeysFile $tmp/ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
SetEnv PATH=$bin:/usr/local/bin:/usr/bin:/bin${S3_ENDPOINT:+ AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY AWS_REGION=$AWS_REGION}
EOF
	start_sshd "$h"
	cat >>"$tmp/ssh/config" <<EOF
Host host$h
  HostName 127.0.0.1
  Port $port
  User root
  IdentityFile $tmp/ssh/client
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
  ConnectTimeout 5
EOF
	echo "host$h" >>"$tmp/hosts.txt"
done
for h in 1 2 3; do
	wait_login "$h"
done
[ "$(ssh -F "$tmp/ssh/config" host1 'command -v ckfetch')" = "$bin/ckfetch" ] ||
	fail "the ssh hosts do not see the tools on their PATH (sshd SetEnv)"
info "host1..host3 answer on their own ports"

# 240 URLs, 30 per shard on average; slow bodies so a shard takes a few
# seconds and host 2 can be killed in the middle of one.
step "writing urls.txt"
for i in $(seq 1 240); do
	size=$((2000 + (i * 7919) % 30000))
	printf '%s/f/u%03d?size=%d&slow=40000\tu%03d.bin\n' "$base" "$i" "$size" "$i"
done >"$tmp/urls.txt"

jobs=4
# run_phase WHAT DEST FETCH_FILE: runs the recipe with ckfetch writing to
# DEST (its -d and what goes with it) in a new work directory, kills host 2
# in the middle, and checks the run; FETCH_FILE NAME OUT copies the stored
# file NAME to OUT.
run_phase() {
	what=$1 dest=$2 fetch_file=$3
	work=$tmp/work-$what
	mkdir -p "$work"
	cp "$tmp/urls.txt" "$tmp/hosts.txt" "$work/"
	curl -fsS "$base/_reset" >/dev/null || fail "cannot reset the test server's counters"
	cmd='ckskip --shard {}/8 -c check-{}.txt urls.txt | ckfetch -q -j '$jobs' '"$dest"' --failed failed-{}.txt | ckmark check-{}.txt'
	step "$what: running 8 shards over the three hosts, one job per host"
	info "seq 0 7 | parallel -j1 --sshloginfile hosts.txt --retries 3 --wd $work '$cmd'"
	cd "$work"
	seq 0 7 | parallel -j1 --ssh "ssh -F $tmp/ssh/config" --sshloginfile hosts.txt --retries 3 \
		--wd "$work" --joblog "$work/joblog" --tag --line-buffer "$cmd" >"$work/parallel.out" 2>&1 &
	par=$!
	pids+=($par)

	# Wait until host 2 runs a shard that has checkpointed a line, then kill it.
	killed=
	for _ in $(seq 600); do
		kill -0 "$par" 2>/dev/null || break
		for p in $(descendants "${sshd_pids[1]}"); do
			args=$( (tr "\0" " " <"/proc/$p/cmdline") 2>/dev/null || true)
			case $args in
			ckmark\ check-*)
				chk=${args#ckmark }
				chk=${chk%% *}
				if [ -s "$work/$chk" ]; then
					killed=$chk
					break 2
				fi
				;;
			esac
		done
		sleep 0.05
	done
	[ -n "$killed" ] || fail "host 2 never ran a shard that checkpointed a line (see $work/parallel.out)"
	shard=${killed#check-}
	shard=${shard%.txt}
	before=$(grep -c . "$work/$killed" || true)
	victims=$(descendants "${sshd_pids[1]}")
	kill -KILL "${sshd_pids[1]}" $victims 2>/dev/null || true
	step "killed host 2 (its sshd and $(echo $victims | wc -w) processes) in shard $shard, after $before checkpointed lines"

	status=0
	wait "$par" || status=$?
	cd "$root"
	[ "$status" = 0 ] || fail "parallel exited $status (see $work/parallel.out and $work/joblog)"
	info "parallel exited 0; what the jobs printed:"
	sed 's/^/    | /' "$work/parallel.out"
	info "its job log:"
	column -t "$work/joblog" | sed 's/^/    | /'
	# The job log keeps each job's last try: the killed shard's names the host
	# that ran it again.
	rerun=$(awk -v c="check-$shard.txt" 'NR > 1 && index($0, c) { print $2 }' "$work/joblog")
	case $rerun in
	host1 | host3) info "shard $shard was run again on $rerun" ;;
	*) fail "the job log shows shard $shard last on '$rerun', not on host1 or host3" ;;
	esac

	step "checking every shard's checkpoint"
	for k in $(seq 0 7); do
		left=$("$bin/ckskip" --shard "$k/8" -c "$work/check-$k.txt" "$work/urls.txt" | wc -l)
		[ "$left" = 0 ] || fail "shard $k: ckskip still prints $left lines"
	done
	cat "$work"/check-*.txt | sort >"$tmp/done.txt"
	dups=$(uniq -d "$tmp/done.txt" | wc -l)
	[ "$dups" = 0 ] || fail "$dups lines are checkpointed twice"
	sort "$work/urls.txt" | cmp -s - "$tmp/done.txt" || fail "the checkpoints together are not urls.txt"
	info "8 checkpoints, whole and disjoint, cover urls.txt"

	step "counting the server's requests"
	curl -fsS "$base/_stats" >"$tmp/stats.json"
	python3 - "$tmp/stats.json" "$work/urls.txt" "$jobs" <<-'EOF' || fail "request counts (above)"
	import json, sys
	from urllib.parse import urlsplit
	stats = json.load(open(sys.argv[1]))
	jobs = int(sys.argv[3])
	want = []
	for l in open(sys.argv[2]):
	    u = urlsplit(l.split("\t")[0])
	    want.append(u.path + "?" + u.query)
	count = {k: v["requests"] for k, v in stats["urls"].items()}
	missing = [k for k in want if count.get(k, 0) == 0]
	extra = sum(count.get(k, 0) for k in want) - len(want)
	print(f"    {stats['requests']} requests for {len(want)} URLs: {extra} beyond one each")
	if missing:
	    sys.exit(f"{len(missing)} URLs never requested, e.g. {missing[0]}")
	# A line done but not yet checkpointed when its host died has its file: the
	# rerun finds it without a request. Only the downloads in flight in the
	# killed shard's ckfetch (-j of them) are asked again (a Range resume).
	if extra > jobs:
	    sys.exit(f"{extra} requests beyond one per URL: more than the {jobs} the killed shard had in flight")
	EOF

	step "checking every file's bytes"
	n=0
	while IFS=$'\t' read -r url name; do
		# The same bytes without the slow pace (slow= changes the timing only).
		curl -fsS "${url%&slow=*}" -o "$tmp/ref" || fail "reference download of $url"
		"$fetch_file" "$name" "$tmp/got" || fail "$name: not stored"
		cmp -s "$tmp/ref" "$tmp/got" || fail "$name differs from the server's bytes"
		n=$((n + 1))
	done <"$work/urls.txt"
	[ -z "$(find "$work" -name '*.part*')" ] || fail ".part files left: $(find "$work" -name '*.part*' | head -n 3)"
	info "$n files exact, no .part left"
	step "ok ($what): the sharded run over ssh survived losing host 2"
}

# disk_file NAME OUT: the file of NAME in the shared output directory.
disk_file() { cp "$work/out/$1" "$2"; }

# s3_get NAME OUT: the object of NAME, by a GET signed with curl --aws-sigv4.
s3_get() {
	curl -fsS --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
		-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$S3_ENDPOINT/$S3_BUCKET/shards/$1" -o "$2"
}

run_phase shared-dir "-d out" disk_file
if [ "$s3" = 1 ]; then
	start_sshd 2 # killed in the first run
	wait_login 2
	run_phase s3 "-d s3://$S3_BUCKET/shards --s3-endpoint $S3_ENDPOINT --spool spool-{}" s3_get
	uploads=$(curl -fsS --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
		-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$S3_ENDPOINT/$S3_BUCKET?prefix=shards%2F&uploads=") ||
		fail "cannot list the bucket's multipart uploads"
	case $uploads in
	*"<Upload>"*) fail "multipart uploads left open: $uploads" ;;
	*ListMultipartUploadsResult*) ;;
	*) fail "the bucket's multipart uploads cannot be listed: $uploads" ;;
	esac
	info "no multipart upload left open in the bucket"
fi
