#!/usr/bin/env bash
# examples/nginx.sh: an unmodified program (Debian's nginx) reads its configuration from raftfs.
#
# With the demo cluster up (examples/demo.sh), this writes an nginx configuration and a page
# through member n1, starts nginx on member n2's view of that configuration (serving the page from
# member n3's view), then changes the page and the configuration on n1 and reloads nginx: every
# member sees every change. Stop with Ctrl-C or `examples/nginx.sh stop`.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
port=${PORT:-8088}
run=$top/demo/nginx-run # pid and logs: nginx writes these, so they stay off the mount

nginx_cmd() { nginx -p "$run" -c "$top/demo/n2/nginx/nginx.conf" "$@"; }

if [[ ${1:-} == stop ]]; then
	nginx_cmd -s stop 2>/dev/null || true
	exit 0
fi
command -v nginx >/dev/null || { echo "nginx.sh: needs nginx (apt-get install nginx-light)" >&2; exit 1; }
mountpoint -q demo/n1 || examples/demo.sh up
mkdir -p "$run/logs" demo/n1/nginx demo/n1/www
cat > demo/n1/nginx/nginx.conf <<CONF
daemon on;
pid $run/nginx.pid;
error_log $run/logs/error.log;
events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:$port;
        root $top/demo/n3/www;
        add_header X-Config-Version 1;
    }
}
CONF
echo "hello from raftfs, version 1" > demo/n1/www/index.html
nginx_cmd -t -q
nginx_cmd
trap 'nginx_cmd -s stop 2>/dev/null || true' EXIT
sleep 0.3
echo "nginx.sh: GET / -> $(curl -s "http://127.0.0.1:$port/")"
echo "hello from raftfs, version 2" > demo/n1/www/index.html
echo "nginx.sh: page changed on n1; GET / -> $(curl -s "http://127.0.0.1:$port/")"
sed -i 's/X-Config-Version 1/X-Config-Version 2/' demo/n1/nginx/nginx.conf
nginx_cmd -s reload
sleep 0.5
echo "nginx.sh: config changed on n1, reloaded; $(curl -sI "http://127.0.0.1:$port/" | grep -i x-config-version)"
