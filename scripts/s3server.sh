#!/usr/bin/env bash
# s3server.sh: a real S3 server on 127.0.0.1 for ck's tests, the demo and
# users: SeaweedFS's `weed mini` (Apache-2.0), built from its Go module at a
# pinned version.
#
#     scripts/s3server.sh build        build weed (or find it built) and print its path
#     scripts/s3server.sh path         print weed's path; exit 0 if it is built, 3 if not
#     scripts/s3server.sh start DIR    start a server with its data in DIR, write DIR/s3.env
#     scripts/s3server.sh stop DIR     stop the server started into DIR
#
# build: SeaweedFS's go.mod has replace directives, so `go install …@VERSION`
# refuses it. The module is fetched with `go mod download -json`, its
# directory copied to a writable place and `./weed` built there, under
# `nice -n 19` (16 CPU-minutes: about 8 minutes on 2 idle cores, far more on a busy machine; a 230 MB
# binary), into ${XDG_CACHE_HOME:-~/.cache}/ck/weed-VERSION. A binary already
# there is reused. Set WEED=PATH to use a weed binary of your own.
#
# start: picks free 127.0.0.1 ports (each one and its +10000 gRPC partner
# free and below 55535, every port flag passed), starts `weed mini` with
# telemetry, WebDAV, the admin UI and automatic bucket creation off, the
# credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (generated when
# unset) and the bucket S3_BUCKET (default "ck-bucket") created, waits until a signed
# ListObjectsV2 of the bucket answers 200, and writes DIR/s3.env for `.` in
# sh, with these variables:
#     S3_ENDPOINT=http://127.0.0.1:PORT  AWS_ACCESS_KEY_ID=…  AWS_SECRET_ACCESS_KEY=…
#     AWS_REGION=us-east-1  S3_BUCKET=…  S3_PID=…  S3_LOG=DIR/weed.log
# The server's log is DIR/weed.log. The server runs until `stop DIR` (or
# until it is killed): start returns as soon as it is ready.
#
# stop: sends SIGTERM to the pid in DIR/s3.env, SIGKILL after 10 s, and
# removes DIR/s3.env.
#
# Exit status: 0 done; 1 a step failed in a way that is a bug (a message
# says which); 2 usage; 3 the server cannot be built or started here (no go,
# no network for the module proxy, the build failed, weed did not become
# ready): the message starts with "s3server: SKIP:" and says why, so that
# callers can skip their S3 tests loudly instead of failing. Network: the Go
# module proxy for the build only; the server listens on 127.0.0.1 only.

usage() {
	cat <<'EOF'
usage: scripts/s3server.sh build
       scripts/s3server.sh path
       scripts/s3server.sh start DIR
       scripts/s3server.sh stop DIR
exit status: 0 ok, 1 error, 2 usage, 3 cannot build or start weed here (message "s3server: SKIP: ...")
EOF
}

set -eu
set -o pipefail
export LC_ALL=C

module=github.com/seaweedfs/seaweedfs
version=v0.0.0-20261109003541-7506e5f91cd6

fail() {
	printf 's3server: %s\n' "$*" >&2
	exit 1
}
skip() {
	printf 's3server: SKIP: %s: NO S3 SERVER, S3 TESTS CANNOT RUN\n' "$*" >&2
	exit 3
}
info() { printf 's3server: %s\n' "$*" >&2; }

# weed_path prints where weed is (or is to be) built.
weed_path() {
	if [ -n "${WEED:-}" ]; then
		printf '%s\n' "$WEED"
	else
		printf '%s\n' "${XDG_CACHE_HOME:-${HOME:?}/.cache}/ck/weed-$version"
	fi
}

# build_weed prints the path of a weed binary, building it when needed.
build_weed() {
	if [ -n "${WEED:-}" ]; then
		[ -x "$WEED" ] || skip "WEED=$WEED is not an executable"
		printf '%s\n' "$WEED"
		return
	fi
	local cache=${XDG_CACHE_HOME:-${HOME:?}/.cache}/ck
	local bin=$cache/weed-$version
	if [ -x "$bin" ]; then
		printf '%s\n' "$bin"
		return
	fi
	command -v go >/dev/null || skip "no go command to build weed with"
	mkdir -p "$cache" || skip "cannot create $cache"
	# One build at a time per cache directory: a second caller waits for
	# the first one's binary instead of building it again.
	exec 9>"$cache/weed-$version.lock"
	if command -v flock >/dev/null; then
		flock 9
		if [ -x "$bin" ]; then
			printf '%s\n' "$bin"
			return
		fi
	fi
	info "building weed $version into $bin (16 CPU-minutes: 8 or more minutes on 2 cores, once)"
	local json dir
	json=$(go mod download -json "$module@$version") || skip "go mod download $module@$version failed (no module proxy?)"
	dir=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -n "$dir" ] && [ -d "$dir" ] || skip "go mod download gave no directory for $module@$version"
	local src
	src=$(mktemp -d "$cache/weed-src.XXXXXX")
	# The module cache is read-only: build from a writable copy.
	cp -R "$dir/." "$src/" && chmod -R u+w "$src" || {
		rm -rf "$src"
		skip "cannot copy $dir"
	}
	local start=$SECONDS
	if ! (cd "$src" && nice -n 19 go build -trimpath -o "$bin.tmp" ./weed) >"$cache/weed-build.log" 2>&1; then
		rm -rf "$src" "$bin.tmp"
		skip "go build ./weed failed, see $cache/weed-build.log"
	fi
	rm -rf "$src"
	mv "$bin.tmp" "$bin"
	info "built weed in $((SECONDS - start)) s"
	printf '%s\n' "$bin"
}

# port_free reports whether nothing listens on 127.0.0.1:$1.
port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pick_ports sets ports to $1 distinct ports, each free with its +10000
# partner, between 20000 and 45534 (so every partner stays below 55535).
pick_ports() {
	local n=$1 tries=0 p q taken
	ports=()
	while [ ${#ports[@]} -lt "$n" ]; do
		tries=$((tries + 1))
		[ $tries -le 2000 ] || skip "no free 127.0.0.1 port pairs found"
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 25535))
		taken=0
		for q in "${ports[@]}"; do
			if [ $((p - q)) -eq 0 ] || [ $((p - q)) -eq 10000 ] || [ $((q - p)) -eq 10000 ]; then
				taken=1
			fi
		done
		[ $taken -eq 0 ] && port_free "$p" && port_free $((p + 10000)) && ports+=("$p")
	done
}

# genkey prints n random characters from [A-Za-z0-9].
genkey() {
	local s
	s=$(head -c 256 /dev/urandom | tr -dc 'A-Za-z0-9')
	printf '%s\n' "${s:0:$1}"
}

# list_code prints the status of a signed ListObjectsV2 of the bucket (000
# when nothing answers).
list_code() {
	# The credentials go to curl on stdin, not on its command line (ps).
	printf 'user = "%s:%s"\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" |
		curl -K - -s -o /dev/null -w '%{http_code}' --max-time 5 \
		--aws-sigv4 "aws:amz:us-east-1:s3" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
		"http://127.0.0.1:$s3port/$S3_BUCKET?list-type=2&max-keys=1" || true
}

start() {
	local dir=$1
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd -P)
	if [ -f "$dir/s3.env" ]; then
		# shellcheck disable=SC1091
		pid=$(. "$dir/s3.env" && printf '%s' "$S3_PID")
		if kill -0 "$pid" 2>/dev/null; then
			fail "a server started into $dir is running (pid $pid): scripts/s3server.sh stop $dir"
		fi
		rm -f "$dir/s3.env"
	fi
	command -v curl >/dev/null || skip "no curl to check the server with"
	local weed
	weed=$(build_weed)

	export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-ck$(genkey 18)}
	export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-$(genkey 40)}
	export S3_BUCKET=${S3_BUCKET:-ck-bucket}
	local v
	for v in "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$S3_BUCKET"; do
		case $v in *[!A-Za-z0-9+/=._-]*) fail "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and S3_BUCKET may hold only A-Z a-z 0-9 + / = . _ -" ;; esac
	done
	case $S3_BUCKET in
	*[!a-z0-9.-]* | ? | ?? | [.-]* | *[.-]) fail "S3_BUCKET=$S3_BUCKET is no valid bucket name (3 to 63 of a-z 0-9 . -, starting and ending with a letter or digit)" ;;
	esac
	[ ${#S3_BUCKET} -le 63 ] || fail "S3_BUCKET=$S3_BUCKET is longer than 63 characters"

	# master, volume, filer, s3 and admin each listen on PORT and PORT+10000;
	# s3's own gRPC port is given too, as a port of its own.
	pick_ports 6
	local mport=${ports[0]} vport=${ports[1]} fport=${ports[2]} s3port=${ports[3]} aport=${ports[4]} s3grpc=${ports[5]}
	mkdir -p "$dir/data"
	# weed prints its log on stderr; keep it for when it does not come up.
	(
		cd "$dir"
		exec "$weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
			-master.port="$mport" -master.port.grpc=$((mport + 10000)) \
			-volume.port="$vport" -volume.port.grpc=$((vport + 10000)) \
			-filer.port="$fport" -filer.port.grpc=$((fport + 10000)) \
			-s3.port="$s3port" -s3.port.grpc="$s3grpc" -s3.port.iceberg=0 -s3.port.lance=0 \
			-admin.port="$aport" -admin.port.grpc=$((aport + 10000)) -admin.port.legacy=0 -admin.ui=false \
			-master.telemetry=false -webdav=false -s3.autoCreateBucket=false \
			-bucket="$S3_BUCKET"
	) </dev/null >"$dir/weed.log" 2>&1 &
	local pid=$!
	local i code missing=0
	for i in $(seq 1 240); do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$dir/weed.log" >&2 || true
			skip "weed mini exited at start (log: $dir/weed.log)"
		fi
		code=$(list_code)
		[ "$code" = 200 ] && break
		# 404: the server is up but the bucket is not there (yet).
		[ "$code" = 404 ] && missing=$((missing + 1))
		if [ "$i" -eq 240 ] || [ $missing -ge 20 ]; then
			kill -KILL "$pid" 2>/dev/null || true
			grep -i 'bucket' "$dir/weed.log" | tail -n 5 >&2 || true
			skip "weed mini did not answer 200 to a signed ListObjectsV2 of $S3_BUCKET (last status $code; log: $dir/weed.log)"
		fi
		sleep 0.5
	done
	umask 077
	cat >"$dir/s3.env.tmp" <<EOF
S3_ENDPOINT=http://127.0.0.1:$s3port
AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
AWS_REGION=us-east-1
S3_BUCKET=$S3_BUCKET
S3_PID=$pid
S3_LOG=$dir/weed.log
export S3_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION S3_BUCKET
EOF
	mv "$dir/s3.env.tmp" "$dir/s3.env"
	info "weed mini up at http://127.0.0.1:$s3port (bucket $S3_BUCKET, pid $pid); env: $dir/s3.env"
}

stop() {
	local dir=$1
	[ -f "$dir/s3.env" ] || fail "no $dir/s3.env: no server was started into $dir"
	local pid
	# shellcheck disable=SC1091
	pid=$(. "$dir/s3.env" && printf '%s' "$S3_PID")
	case $pid in '' | *[!0-9]*) fail "$dir/s3.env: S3_PID is not a pid" ;; esac
	if kill -TERM "$pid" 2>/dev/null; then
		local i
		for i in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$dir/s3.env"
}

case ${1:-} in
-h | --help)
	usage
	exit 0
	;;
build)
	[ $# -eq 1 ] || {
		usage >&2
		exit 2
	}
	build_weed
	;;
path)
	[ $# -eq 1 ] || {
		usage >&2
		exit 2
	}
	weed_path
	[ -x "$(weed_path)" ] || exit 3
	;;
start | stop)
	[ $# -eq 2 ] || {
		usage >&2
		exit 2
	}
	"$1" "$2"
	;;
*)
	usage >&2
	exit 2
	;;
esac
