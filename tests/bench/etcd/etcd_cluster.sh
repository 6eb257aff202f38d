#!/usr/bin/env bash
# etcd_cluster.sh: a throw-away 3-member etcd 3.4 cluster on 127.0.0.1, for the benchmarks that
# print etcd's figures beside raftfs's (tests/bench/etcd/etcd-bench, fs-bench). Each member is
# Debian's /usr/bin/etcd (package etcd-server) with default settings (fsync on), free ports picked
# at start, and its data dir in a fresh temp dir on the real disk (${ETCD_CLUSTER_TMPDIR:-/var/tmp}).
# It waits until every member answers /health with "true", then prints
#
#   ETCD_ENDPOINTS=http://127.0.0.1:P1,http://127.0.0.1:P2,http://127.0.0.1:P3
#   ETCD_CLUSTER_DIR=/var/tmp/etcd-cluster.XXXXXX
#
# Usage:
#   etcd_cluster.sh up          start, print the lines above and leave it running (detached)
#   etcd_cluster.sh down [DIR]  stop the cluster of DIR (default $ETCD_CLUSTER_DIR) and remove DIR
#   etcd_cluster.sh run CMD...  start, run CMD with ETCD_ENDPOINTS exported, stop and remove on exit
#                               (also on failure or signal); exits with CMD's status
#   etcd_cluster.sh serve       start, print the lines, then stay until stdin reaches EOF or a
#                               signal comes, then stop and remove. etcd-bench uses this with a pipe
#                               on stdin, so the cluster goes away even if the bench is killed.
# Members are started with --pdeathsig TERM (except for `up`), so they also die with this script.
# Only 127.0.0.1 is ever used. Exit status: 0 ok, 1 failure (members' log tails on stderr), 2 usage.
set -euo pipefail

ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
TMPBASE=${ETCD_CLUSTER_TMPDIR:-/var/tmp}
START_TIMEOUT=${ETCD_CLUSTER_START_TIMEOUT:-30}   # seconds until all three are healthy
MARKER=.etcd-cluster-sh                            # present in every dir this script created

# Settings of the caller's environment must not leak into the members.
while IFS='=' read -r name _; do
	case $name in ETCD_ENDPOINTS | ETCD_CLUSTER_*) ;; ETCD_* | ETCDCTL_*) unset "$name" ;; esac
done < <(env)

die() { echo "etcd_cluster.sh: $*" >&2; exit 1; }

usage() {
	sed -n '/^# Usage:/,/^# Only/p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# Prints six free TCP ports on 127.0.0.1 (bound together, then released: a small race remains,
# which start_members covers by retrying with new ports).
free_ports() {
	/usr/bin/python3 - <<'EOF'
import socket
socks = []
for _ in range(6):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# True when the member on 127.0.0.1:$1 reports {"health":"true"}.
healthy() {
	local reply
	reply=$(timeout 2 bash -c '
		exec 3<>/dev/tcp/127.0.0.1/'"$1"' || exit 1
		printf "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
		cat <&3' 2>/dev/null) || return 1
	[[ $reply == *'"health":"true"'* ]]
}

# member_pids DIR: the pids of DIR/pids that are still etcd processes of DIR (a pid is checked
# against its command line, so a reused pid is never signalled).
member_pids() {
	local pid
	[[ -f $1/pids ]] || return 0
	while read -r pid; do
		if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "--data-dir $1/n"; then
			echo "$pid"
		fi
	done <"$1/pids"
}

# stop_members DIR: SIGTERM the members listed in DIR/pids, SIGKILL after 2 s, remove DIR. (The
# last member standing tends to sit out its leadership-transfer timeout after SIGTERM; the data is
# thrown away anyway, so it is not waited for longer.)
stop_members() {
	local dir=$1 pid i
	[[ -n $dir && -f $dir/$MARKER ]] || return 0
	for pid in $(member_pids "$dir"); do kill -TERM "$pid" 2>/dev/null || true; done
	for ((i = 0; i < 20; i++)); do
		[[ -n $(member_pids "$dir") ]] || break
		sleep 0.1
	done
	for pid in $(member_pids "$dir"); do kill -KILL "$pid" 2>/dev/null || true; done
	# Reap them when they are our children (run/serve); harmless otherwise.
	wait 2>/dev/null || true
	rm -rf -- "$dir"
}

# start_members DETACH: creates CLUSTER_DIR, starts three members, waits until all are healthy,
# sets ENDPOINTS. DETACH=1 starts them in their own session without the parent-death signal.
start_members() {
	local detach=$1 attempt
	[[ -x $ETCD_BIN ]] || die "$ETCD_BIN not found: apt-get install -y etcd-server etcd-client"
	mkdir -p "$TMPBASE"
	if [[ $(stat -f -c %T "$TMPBASE") == tmpfs ]]; then
		echo "etcd_cluster.sh: warning: $TMPBASE is tmpfs, fsync costs nothing there" >&2
	fi
	for attempt in 1 2 3; do
		CLUSTER_DIR=$(mktemp -d "$TMPBASE/etcd-cluster.XXXXXX")
		touch "$CLUSTER_DIR/$MARKER"
		local ports cp pp i initial="" token
		ports=$(free_ports) || die "cannot pick free ports"
		read -r -a pp <<<"0 $ports"   # pp[1..3]: client ports, pp[4..6]: peer ports
		cp=("${pp[@]:0:4}")
		pp=(0 "${pp[@]:4:3}")
		for i in 1 2 3; do initial+="${initial:+,}n$i=http://127.0.0.1:${pp[$i]}"; done
		token="etcd-bench-$$-$attempt-$RANDOM"
		: >"$CLUSTER_DIR/pids"
		for i in 1 2 3; do
			local args=(--name "n$i" --data-dir "$CLUSTER_DIR/n$i"
				--listen-client-urls "http://127.0.0.1:${cp[$i]}"
				--advertise-client-urls "http://127.0.0.1:${cp[$i]}"
				--listen-peer-urls "http://127.0.0.1:${pp[$i]}"
				--initial-advertise-peer-urls "http://127.0.0.1:${pp[$i]}"
				--initial-cluster "$initial" --initial-cluster-state new
				--initial-cluster-token "$token"
				--logger zap --log-outputs "$CLUSTER_DIR/n$i.log")
			if ((detach)); then
				setsid "$ETCD_BIN" "${args[@]}" </dev/null >>"$CLUSTER_DIR/n$i.out" 2>&1 &
			else
				setpriv --pdeathsig TERM -- "$ETCD_BIN" "${args[@]}" \
					</dev/null >>"$CLUSTER_DIR/n$i.out" 2>&1 &
			fi
			echo $! >>"$CLUSTER_DIR/pids"
		done
		local deadline=$((SECONDS + START_TIMEOUT)) ok=0 dead=0
		while ((SECONDS < deadline)); do
			while read -r pid; do kill -0 "$pid" 2>/dev/null || dead=1; done <"$CLUSTER_DIR/pids"
			((dead)) && break
			if healthy "${cp[1]}" && healthy "${cp[2]}" && healthy "${cp[3]}"; then
				ok=1
				break
			fi
			sleep 0.1
		done
		if ((ok)); then
			ENDPOINTS="http://127.0.0.1:${cp[1]},http://127.0.0.1:${cp[2]},http://127.0.0.1:${cp[3]}"
			echo "$ENDPOINTS" >"$CLUSTER_DIR/endpoints"
			return 0
		fi
		echo "etcd_cluster.sh: attempt $attempt failed ($( ((dead)) && echo "a member exited" ||
			echo "not healthy after ${START_TIMEOUT}s"))" >&2
		for i in 1 2 3; do
			echo "--- n$i" >&2
			tail -n 5 "$CLUSTER_DIR/n$i.log" "$CLUSTER_DIR/n$i.out" 2>/dev/null >&2 || true
		done
		stop_members "$CLUSTER_DIR"
		CLUSTER_DIR=""
		# A member that exited most likely lost a port race: try new ports. A timeout will not
		# get better by retrying.
		((dead)) || break
	done
	die "could not start a healthy 3-member cluster"
}

print_lines() {
	echo "ETCD_ENDPOINTS=$ENDPOINTS"
	echo "ETCD_CLUSTER_DIR=$CLUSTER_DIR"
}

CLUSTER_DIR=""
cleanup() { stop_members "$CLUSTER_DIR"; CLUSTER_DIR=""; }

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case $cmd in
up)
	[[ $# -eq 0 ]] || usage
	trap 'cleanup' INT TERM HUP
	start_members 1
	trap - INT TERM HUP
	print_lines
	;;
down)
	[[ $# -le 1 ]] || usage
	dir=${1:-${ETCD_CLUSTER_DIR:-}}
	[[ -n $dir ]] || die "down: no DIR given and ETCD_CLUSTER_DIR is not set"
	[[ -f $dir/$MARKER ]] || die "down: $dir is not a cluster dir of this script"
	stop_members "$dir"
	;;
run)
	[[ $# -gt 0 ]] || usage
	trap 'cleanup' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	start_members 0
	print_lines >&2
	export ETCD_ENDPOINTS=$ENDPOINTS ETCD_CLUSTER_DIR=$CLUSTER_DIR
	rc=0
	"$@" || rc=$?
	exit $rc
	;;
serve)
	[[ $# -eq 0 ]] || usage
	trap 'cleanup' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	trap '' PIPE
	start_members 0
	print_lines 2>/dev/null || true
	# Stay until the caller closes our stdin (or dies, which closes it too).
	while IFS= read -r _; do :; done
	exit 0
	;;
*)
	usage
	;;
esac
