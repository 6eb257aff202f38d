#!/usr/bin/env bash
# examples/demo.sh [up|tls|down]: a 3-member raftfs cluster on this machine's loopback.
#
#   up (default)  builds raftfs if needed, mounts members n1, n2, n3 at ./demo/n1..n3 (data in
#                 ./demo/data, logs in ./demo/data/nN/raftfs.log), shows a write on n1 read on n2
#                 and n3, and prints what to try next
#   tls           the same with mutual TLS on the peer port: examples/certs.sh makes a CA and a
#                 certificate per member in ./demo/certs, and each member gets --peer-cert-file,
#                 --peer-key-file and --peer-trusted-ca-file
#   down          unmounts all three (each hands leadership over and exits) and removes ./demo
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
raftfs=$top/build/fs/raftfs
names=(n1 n2 n3)
ports=(23791 23792 23793)

down() {
	for n in "${names[@]}"; do
		if mountpoint -q "demo/$n" 2>/dev/null; then
			"$raftfs" umount "demo/$n" || fusermount3 -u -z "demo/$n" || true
		fi
	done
	# each daemon exits once it has handed over and closed its WAL: wait for the data dir locks
	for n in "${names[@]}"; do
		for _ in $(seq 100); do
			[[ -f demo/data/$n/lock ]] || break
			flock -n "demo/data/$n/lock" true 2>/dev/null && break
			sleep 0.1
		done
	done
	rm -rf demo
	echo "demo: stopped"
}

up() {
	local tls=${1:-}
	scripts/setup build -Dbuildtype=release
	if mountpoint -q demo/n1 2>/dev/null; then
		echo "demo: already running (examples/demo.sh down stops it)"
		exit 0
	fi
	mkdir -p demo/data
	if [[ $tls ]]; then
		examples/certs.sh demo/certs n1=127.0.0.1 n2=127.0.0.1 n3=127.0.0.1
	fi
	local cluster=""
	for i in "${!names[@]}"; do
		cluster+="${cluster:+,}${names[$i]}=127.0.0.1:${ports[$i]}"
	done
	for i in "${!names[@]}"; do
		local n=${names[$i]}
		mkdir -p "demo/$n"
		local peer_tls=()
		if [[ $tls ]]; then
			peer_tls=(--peer-cert-file "demo/certs/$n.pem"
				--peer-key-file "demo/certs/$n-key.pem"
				--peer-trusted-ca-file demo/certs/ca.pem)
		fi
		# returns once the mount is live; the member goes on in the background
		"$raftfs" mount --name "$n" --data-dir "demo/data/$n" \
			--listen-peer "127.0.0.1:${ports[$i]}" --initial-cluster "$cluster" \
			--initial-cluster-token demo "${peer_tls[@]}" "demo/$n"
	done
	echo 'worker_processes 4;' > demo/n1/nginx.conf # returns once a quorum committed it
	for n in n2 n3; do
		for _ in $(seq 50); do
			[[ "$(cat "demo/$n/nginx.conf" 2>/dev/null)" == 'worker_processes 4;' ]] && break
			sleep 0.1
		done
		echo "demo: demo/$n/nginx.conf: $(cat "demo/$n/nginx.conf")"
	done
	if [[ $tls ]]; then
		"$raftfs" status demo/n1 | sed -n '/^peer traffic/p;/^peer certificates/,$p' |
			sed 's/^/demo: /'
	fi
	cat <<TXT

demo: three members are mounted at demo/n1, demo/n2 and demo/n3. Try:
  echo hello > demo/n1/greeting; cat demo/n3/greeting
  mkdir -p demo/n2/etc/app && ls -R demo/n1
  getfattr -d -m user.raftfs demo/n1/nginx.conf    # create and mod revisions, version, lease
  getfattr -d -m user.raftfs demo/n2               # revision, member, leader, term
  df -h demo/n1
  inotifywait -m demo/n2 & echo changed > demo/n1/greeting   # events for remote changes
  build/fs/raftfs status demo/n1                   # leader, term, indexes, revisions, members
  build/fs/raftfs watch demo/n3 / --prefix --rev 1 # the history so far, then live changes
  build/fs/raftfs lease grant demo/n1 10           # then: setfattr -n user.raftfs.lease -v ID FILE
Logs: demo/data/nN/raftfs.log. Stop: examples/demo.sh down
TXT
}

case ${1:-up} in
up) up ;;
tls) up tls ;;
down) down ;;
*) echo "usage: examples/demo.sh [up|tls|down]" >&2; exit 2 ;;
esac
