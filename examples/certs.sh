#!/usr/bin/env bash
# examples/certs.sh DIR NAME=IP [NAME=IP...]: a CA and one peer certificate per member, with the
# openssl command, for raftfs's peer TLS (as etcd's docs make them with cfssl).
#
# Writes DIR/ca.pem and DIR/ca-key.pem (the CA; kept if they exist, so members can be added
# later), and for each NAME: DIR/NAME.pem (CN=NAME, subjectAltName IP:IP, for use as TLS client
# and server) and DIR/NAME-key.pem (mode 0600). Start each member with
#   --peer-cert-file DIR/NAME.pem --peer-key-file DIR/NAME-key.pem --peer-trusted-ca-file DIR/ca.pem
# ECDSA P-256 keys; the CA is valid 10 years, member certificates 1 year (DAYS=N overrides).
# CN=X names every certificate of this run X instead of NAME (for --peer-cert-allowed-cn X).
set -euo pipefail

usage() {
	echo "usage: examples/certs.sh DIR NAME=IP [NAME=IP...]" >&2
	exit 2
}
(($# >= 2)) || usage
dir=$1
shift
days=${DAYS:-365}
mkdir -p "$dir"
umask 077

if [[ ! -f $dir/ca.pem || ! -f $dir/ca-key.pem ]]; then
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
		-days 3650 -subj "/O=raftfs/CN=raftfs peer CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-keyout "$dir/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null
	chmod 644 "$dir/ca.pem"
	echo "certs: $dir/ca.pem (new CA)"
fi

for member in "$@"; do
	name=${member%%=*}
	ip=${member#*=}
	if [[ -z $name || -z $ip || $member != *=* ]]; then
		echo "certs: '$member' is not NAME=IP" >&2
		usage
	fi
	if [[ $ip =~ ^[0-9.]+$ || $ip == *:* ]]; then san="IP:$ip"; else san="DNS:$ip"; fi
	ext=$(mktemp)
	trap 'rm -f "$ext" "$dir/$name.csr"' EXIT
	cat >"$ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$san
EOF
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj "/O=raftfs/CN=${CN:-$name}" -keyout "$dir/$name-key.pem" -out "$dir/$name.csr" 2>/dev/null
	openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
		-CAcreateserial -sha256 -days "$days" -extfile "$ext" -out "$dir/$name.pem" 2>/dev/null
	chmod 600 "$dir/$name-key.pem"
	chmod 644 "$dir/$name.pem"
	rm -f "$ext" "$dir/$name.csr"
	trap - EXIT
	echo "certs: $dir/$name.pem (CN=${CN:-$name}, $san), key $dir/$name-key.pem"
done
