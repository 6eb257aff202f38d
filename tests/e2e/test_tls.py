"""test_tls.py: mutual TLS on the peer port (issue 22), through what users touch: certificates made
by examples/certs.sh, `raftfs mount` with etcd's --peer-* flags, `raftfs status`, the members'
logs, and the bytes on loopback.

- a 3-member TLS cluster serves writes on every mount, sends a snapshot to a member that lagged,
  and takes a 4th member added with `raftfs member add`;
- an impostor holding a member's name and address is refused when its certificate comes from
  another CA or has a CN not allowed, and a client without a certificate is refused: each refusal
  is one log line saying why, and the cluster keeps serving without it;
- a plaintext peer gets nothing in (protocol mismatch, both ways);
- garbage after a valid handshake closes that connection and nothing else happens;
- the content of a file never crosses loopback in clear with TLS, and does without (the control);
- a key readable by others stops the mount; SIGHUP re-reads the certificate.
"""

import json
import os
import random
import re
import signal
import socket
import ssl
import struct
import subprocess
import time

import pytest

import harness

CERTS_SH = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "certs.sh")


def make_certs(dir, *names, cn=None, days=None):
    env = dict(os.environ)
    if cn:
        env["CN"] = cn
    if days:
        env["DAYS"] = str(days)
    r = subprocess.run([CERTS_SH, dir, *(f"{n}=127.0.0.1" for n in names)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def tls_flags(certs, name, ca=None, extra=()):
    return ("--peer-cert-file", os.path.join(certs, f"{name}.pem"),
            "--peer-key-file", os.path.join(certs, f"{name}-key.pem"),
            "--peer-trusted-ca-file", os.path.join(ca or certs, "ca.pem"), *extra)


def start(ws, binary, names, flags_of, ports=None, wait=True):
    """Starts members `names` with their own flags (flags_of(name)); returns them and the ports."""
    ports = ports or {n: harness.free_port() for n in names}
    initial = ",".join(f"{n}=127.0.0.1:{ports[n]}" for n in names)
    members = []
    for n in names:
        mp = ws.path(n)
        argv = harness.member_argv(binary, n, ws.path(n + ".data"), ports[n], initial, mp,
                                   flags_of(n))
        members.append(ws.add(harness.Daemon(n, argv, mp, ws.root)).start())
    if wait:
        for m in members:
            m.wait_mounted(20)
    return members, ports, initial


def ok(binary, *args):
    r = subprocess.run([binary, *args], capture_output=True, timeout=30)
    assert r.returncode == 0, f"raftfs {' '.join(args)}: {r.returncode}\n{r.stderr.decode()}"
    return r.stdout.decode(errors="replace")


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, OSError):
        return None


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def status(m):
    return json.loads(read(os.path.join(m.mountpoint, ".raftfs/status")))


def lines(m, pattern):
    return [ln for ln in m.stderr().splitlines() if re.search(pattern, ln)]


def serving(writer, readers, name, data):
    """A write through writer is read through every reader."""
    write(os.path.join(writer.mountpoint, name), data)
    return all(wait_for(lambda r=r: read(os.path.join(r.mountpoint, name)) == data)
               for r in readers)


@pytest.fixture
def certs(ws):
    d = ws.path("certs")
    make_certs(d, "n1", "n2", "n3", "n4")
    return d


def test_tls_cluster_writes_snapshot_and_member_add(ws, raftfs_bin, certs):
    snap = ("--snapshot-count", "10", "--snapshot-catchup-entries", "5")
    members, ports, initial = start(ws, raftfs_bin, ["n1", "n2", "n3"],
                                    lambda n: tls_flags(certs, n, extra=snap))
    n1, n2, n3 = members
    for i, m in enumerate(members):
        others = [o for o in members if o is not m]
        assert serving(m, others, f"from-{m.name}", f"written on {m.name}\n".encode() * (i + 1))
    table = ok(raftfs_bin, "status", n1.mountpoint)
    assert "peer traffic     TLS 1.3, mutual: both sides verified by the trusted CA" in table
    assert wait_for(lambda: "O=raftfs,CN=n2" in ok(raftfs_bin, "status", n1.mountpoint))
    doc = status(n1)
    assert doc["peer_tls"] is True
    certs_seen = {m["name"]: m["certificate"] for m in doc["members"]}
    assert certs_seen["n1"] is None and certs_seen["n2"] == "O=raftfs,CN=n2", certs_seen

    # n3 lags behind a compacted log: it catches up from a snapshot sent over TLS
    n3_id = status(n3)["member_id"]
    n3.stop()
    files = {f"f{i:03d}": f"file {i}\n".encode() * (i + 1) for i in range(40)}
    for name, data in files.items():
        write(os.path.join(n1.mountpoint, name), data)
    time.sleep(1.0)  # snapshots are taken in a child: the log is compacted past n3 once done
    n3.start().wait_mounted(20)
    assert wait_for(lambda: all(read(os.path.join(n3.mountpoint, n)) == d
                                for n, d in files.items()), 20)
    sent = sum(m.stderr().count(f"snapshot to {n3_id}: sent") for m in (n1, n2))
    assert sent >= 1, "n3 caught up without a snapshot: the test proves nothing"

    # a 4th member, added with the CLI, joins over TLS
    port = harness.free_port()
    out = ok(raftfs_bin, "member", "add", n2.mountpoint, f"n4=127.0.0.1:{port}")
    joined = out.split("--initial-cluster ")[1].strip()
    mp = ws.path("n4")
    argv = harness.member_argv(raftfs_bin, "n4", ws.path("n4.data"), port, joined, mp,
                               ("--initial-cluster-state", "existing",
                                *tls_flags(certs, "n4", extra=snap)))
    n4 = ws.add(harness.Daemon("n4", argv, mp, ws.root)).start()
    n4.wait_mounted(30)
    assert wait_for(lambda: all(read(os.path.join(n4.mountpoint, n)) == d
                                for n, d in files.items()), 20)
    assert serving(n4, [n1, n2, n3], "from-n4", b"the fourth member writes\n")
    for m in (n1, n2, n3, n4):
        assert not lines(m, r"TLS:|refused"), (m.name, lines(m, r"TLS:|refused"))


def impostor(ws, raftfs_bin, name, ports, initial, flags):
    """A member started with the name and address of a member of the cluster, fresh data dir."""
    mp = ws.path(name + "-impostor")
    argv = harness.member_argv(raftfs_bin, name, ws.path(name + "-impostor.data"), ports[name],
                               initial, mp, flags)
    return ws.add(harness.Daemon(name + "-impostor", argv, mp, ws.root)).start()


@pytest.mark.parametrize("how", ["other-ca", "cn-not-allowed", "expired"])
def test_impostor_with_a_bad_certificate_is_refused(ws, raftfs_bin, certs, how):
    cn = ("--peer-cert-allowed-cn", "raftfs-peer")
    good = ws.path("good")
    make_certs(good, "n1", "n2", "n3", cn="raftfs-peer")
    members, ports, initial = start(ws, raftfs_bin, ["n1", "n2", "n3"],
                                    lambda n: tls_flags(good, n, extra=cn))
    n1, n2, n3 = members
    assert serving(n1, [n2, n3], "before", b"before the impostor\n")
    n3.stop()
    before = status(n1)
    if how == "other-ca":
        other = ws.path("other")
        make_certs(other, "n3", cn="raftfs-peer")
        flags = tls_flags(other, "n3", extra=cn)
        cluster_says, impostor_says = "unknown CA: ", "unknown CA: "
    elif how == "expired":
        # the cluster's own CA and CN, expired since yesterday
        old = ws.path("old")
        os.makedirs(old)
        for f in ("ca.pem", "ca-key.pem"):
            with open(os.path.join(good, f), "rb") as src, open(os.path.join(old, f), "wb") as dst:
                dst.write(src.read())
        os.chmod(os.path.join(old, "ca-key.pem"), 0o600)
        make_certs(old, "n3", cn="raftfs-peer", days=-1)
        flags = tls_flags(old, "n3", extra=cn)
        cluster_says = "expired: its certificate has expired"
        impostor_says = "expired: it says this member's certificate has expired"
    else:
        # the cluster's own CA, a CN that is not the allowed one
        make_certs(good, "bad")
        flags = tls_flags(good, "bad")
        cluster_says = "CN not allowed: its certificate's CN is 'bad', only 'raftfs-peer' is"
        impostor_says = "it refused this member's certificate"
    x = impostor(ws, raftfs_bin, "n3", ports, initial, flags)
    x.wait_mounted(20)
    said = (r"(refused peer connection from 127.0.0.1:\d+|peer \w+ at 127.0.0.1:%d: TLS): " %
            ports["n3"] + re.escape(cluster_says))
    assert wait_for(lambda: lines(n1, said) and lines(n2, said))
    assert wait_for(lambda: lines(x, re.escape(impostor_says)))
    # one line per refusal, however often the impostor redials
    time.sleep(3)
    for m in (n1, n2):
        assert len(lines(m, "refused peer connection")) <= 1, lines(m, "refused peer")
        assert len(lines(m, r"peer \w+ at 127.0.0.1:%d: TLS:" % ports["n3"])) <= 1
    assert serving(n1, [n2], "during", b"written while the impostor knocks\n")
    assert read(os.path.join(x.mountpoint, "during")) is None
    assert read(os.path.join(x.mountpoint, "before")) is None
    after = status(n1)
    assert after["term"] == before["term"]
    assert sorted(m["name"] for m in after["members"]) == ["n1", "n2", "n3"]
    listed = ok(raftfs_bin, "member", "list", n1.mountpoint)
    assert len(listed.splitlines()) == 4, listed
    x.stop()


def hello_frame(cluster=0, sender=0, receiver=0):
    body = b"RAFTFS01" + struct.pack("<QQQ", cluster, sender, receiver)
    return struct.pack("<IB", len(body), 1) + body


def tls_client(certs, name=None, ca=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(os.path.join(ca or certs, "ca.pem"))
    ctx.check_hostname = False
    if name:
        ctx.load_cert_chain(os.path.join(certs, f"{name}.pem"),
                            os.path.join(certs, f"{name}-key.pem"))
    return ctx


def handshake(ctx, port):
    """A TLS session on a raw socket through memory BIOs: the caller can then send raw bytes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="127.0.0.1")
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(out.read())
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed during the handshake")
            inc.write(data)
    sock.sendall(out.read())
    return sock, obj, inc, out


def recv_all(sock, timeout=3.0):
    """What the peer sends until it closes (or the timeout)."""
    sock.settimeout(timeout)
    got = b""
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                break
            got += d
    except (socket.timeout, ConnectionResetError):
        pass
    return got


def test_plaintext_and_certless_peers_get_nothing_in(ws, raftfs_bin, certs):
    members, ports, initial = start(ws, raftfs_bin, ["n1", "n2", "n3"],
                                    lambda n: tls_flags(certs, n))
    n1, n2, n3 = members
    assert serving(n1, [n2, n3], "a", b"a\n")
    before = status(n1)
    cluster_id = int(before["cluster_id"], 16)
    ids = {m["name"]: int(m["id"], 16) for m in before["members"]}
    # a plaintext HELLO that names the cluster and members right, to a TLS peer port
    with socket.create_connection(("127.0.0.1", ports["n1"]), timeout=5) as s:
        s.sendall(hello_frame(cluster_id, ids["n2"], ids["n1"]))
        answer = recv_all(s)
    # a REFUSE frame (kind 3) with reason 6 that says nothing about the member
    assert answer[4:6] == bytes([3, 6]) and answer[6:] == bytes(16), answer
    assert wait_for(lambda: lines(n1, "refused peer connection from 127.0.0.1:\\d+: protocol "
                                      "mismatch: plaintext, and this member takes TLS peers "
                                      "only"))
    # a TLS client without a certificate: the server asks for one and refuses
    try:
        sock, obj, inc, out = handshake(tls_client(certs), ports["n1"])
        obj.write(hello_frame(cluster_id, ids["n2"], ids["n1"]))
        sock.sendall(out.read())
        answer = recv_all(sock)
        inc.write(answer)
        with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED|certificate required"):
            obj.read(100)
        sock.close()
    except (ConnectionError, ssl.SSLError):
        pass  # refused before its handshake ended: as good
    assert wait_for(lambda: lines(n1, "refused peer connection from 127.0.0.1:\\d+: no "
                                      "certificate: it presented none"))
    # a plaintext member in the cluster's place: refused both ways, one line each way
    n3.stop()  # it hands leadership over if it leads: the term to keep is the one after
    assert wait_for(lambda: status(n1)["leader"] in ("n1", "n2"))
    before = status(n1)
    x = impostor(ws, raftfs_bin, "n3", ports, initial, ())
    x.wait_mounted(20)
    assert wait_for(lambda: lines(x, r"refused us: protocol mismatch: it takes TLS peers only"))
    assert wait_for(lambda: lines(x, r"refused peer connection from 127.0.0.1:\d+: protocol "
                                     r"mismatch: it speaks TLS and this member plaintext"))
    assert wait_for(lambda: lines(n1, r"peer \w+ at 127.0.0.1:%d: TLS: protocol mismatch: it "
                                      r"answered in plaintext" % ports["n3"]))
    assert serving(n1, [n2], "b", b"b\n")
    assert read(os.path.join(x.mountpoint, "b")) is None
    after = status(n1)
    assert after["term"] == before["term"]
    assert sorted(m["name"] for m in after["members"]) == ["n1", "n2", "n3"]
    x.stop()


def test_garbage_after_a_valid_handshake_closes_only_that_connection(ws, raftfs_bin, certs):
    members, ports, _ = start(ws, raftfs_bin, ["n1", "n2", "n3"], lambda n: tls_flags(certs, n))
    n1, n2, n3 = members
    assert serving(n1, [n2, n3], "a", b"a\n")
    before = status(n1)
    seed = random.randrange(1 << 30)
    rnd = random.Random(seed)
    ctx = tls_client(certs, "n4")  # a valid certificate of the cluster's CA
    for i in range(20):
        sock, obj, inc, out = handshake(ctx, ports[rnd.choice(["n1", "n2", "n3"])])
        if i % 2:  # garbage records: not TLS ciphertext
            sock.sendall(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 4096))))
        else:      # valid records of garbage frames
            obj.write(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 4096))))
            sock.sendall(out.read())
        recv_all(sock, 2.0)  # the member closes it
        sock.close()
    for m in members:
        assert m.proc.poll() is None, f"{m.name} died (seed {seed})"
    assert serving(n2, [n1, n3], "b", b"still serving\n"), f"seed {seed}"
    after = status(n1)
    assert after["term"] == before["term"], f"seed {seed}"
    said = sum(len(lines(m, r"refused peer connection from 127.0.0.1:\d+: (TLS error|not a "
                            r"raftfs peer handshake)")) for m in members)
    assert said >= 1, f"seed {seed}"


def capture(ports, action):
    """The bytes tcpdump sees on lo for the peer ports while action runs."""
    expr = " or ".join(f"port {p}" for p in ports)
    pcap = f"/tmp/rfs-tls-{os.getpid()}.pcap"
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-s", "0", "-w", pcap, expr],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)  # tcpdump is listening
        action()
        time.sleep(1.0)
    finally:
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=10)
    with open(pcap, "rb") as f:
        data = f.read()
    os.unlink(pcap)
    assert len(data) > 1000, "tcpdump saw no peer traffic"
    return data


@pytest.mark.parametrize("tls", [True, False])
def test_nothing_of_a_file_crosses_loopback_in_clear(ws, raftfs_bin, certs, tls):
    members, ports, _ = start(ws, raftfs_bin, ["n1", "n2", "n3"],
                              lambda n: tls_flags(certs, n) if tls else ())
    n1, n2, n3 = members
    assert serving(n1, [n2, n3], "warm", b"warm\n")
    secret = b"the-distinctive-value-%d-of-this-run" % random.randrange(1 << 40)
    data = capture(ports.values(), lambda: serving(n1, [n2, n3], "secret", secret))
    if tls:
        assert secret not in data
    else:
        assert secret in data  # the control: the capture does see file content in clear


def test_key_readable_by_others_refuses_to_start_and_sighup_rereads(ws, raftfs_bin, certs):
    key = os.path.join(certs, "n1-key.pem")
    os.chmod(key, 0o644)
    port = harness.free_port()
    r = subprocess.run([raftfs_bin, "mount", "--name", "n1", "--data-dir", ws.path("bad.data"),
                        "--initial-cluster", f"n1=127.0.0.1:{port}", *tls_flags(certs, "n1"),
                        ws.path("bad")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert f"--peer-key-file: {key} is readable by group or others (mode 0644)" in r.stderr
    os.chmod(key, 0o600)

    members, ports, _ = start(ws, raftfs_bin, ["n1", "n2"], lambda n: tls_flags(certs, n))
    n1, n2 = members
    assert serving(n1, [n2], "a", b"a\n")
    assert wait_for(lambda: "O=raftfs,CN=n1" in ok(raftfs_bin, "status", n2.mountpoint))
    # a renewed certificate for n1, another CN so it shows: re-read on SIGHUP
    make_certs(certs, "renewed")
    os.replace(os.path.join(certs, "renewed.pem"), os.path.join(certs, "n1.pem"))
    os.replace(os.path.join(certs, "renewed-key.pem"), key)
    os.kill(n1.proc.pid, signal.SIGHUP)
    assert wait_for(lambda: lines(n1, "peer TLS: certificates and keys re-read"))
    assert n1.proc.poll() is None
    n2.stop()  # its new connections to n1 meet the new certificate
    n2.start().wait_mounted(20)
    assert wait_for(lambda: "O=raftfs,CN=renewed" in ok(raftfs_bin, "status", n2.mountpoint))
    assert serving(n2, [n1], "b", b"b\n")
    # a bad file on SIGHUP: said, and the certificate in use stays
    os.chmod(key, 0o640)
    n1.expect_error(r"peer TLS: reload refused")
    os.kill(n1.proc.pid, signal.SIGHUP)
    assert wait_for(lambda: lines(n1, r"peer TLS: reload refused, the previous certificates "
                                      r"stay: peer key file .* is readable by group or others"))
    os.chmod(key, 0o600)
    assert serving(n1, [n2], "c", b"c\n")


def test_auto_tls_encrypts_with_a_kept_self_signed_pair(ws, raftfs_bin):
    members, ports, _ = start(ws, raftfs_bin, ["n1", "n2"], lambda n: ("--peer-auto-tls",))
    n1, n2 = members
    assert serving(n1, [n2], "a", b"a\n")
    assert status(n1)["peer_traffic"].startswith("TLS 1.3, self-signed (--peer-auto-tls)")
    assert wait_for(lambda: "O=raftfs,CN=n2" in ok(raftfs_bin, "status", n1.mountpoint))
    for m in members:
        said = lines(m, "encrypted but members are not authenticated")
        assert len(said) == 1, said
    key = ws.path("n1.data", "fixtures", "peer", "key.pem")
    cert = ws.path("n1.data", "fixtures", "peer", "cert.pem")
    assert os.stat(key).st_mode & 0o777 == 0o600
    with open(cert, "rb") as f:
        first = f.read()
    secret = b"auto-tls-secret-%d" % random.randrange(1 << 40)
    data = capture(ports.values(), lambda: serving(n2, [n1], "s", secret))
    assert secret not in data
    n1.stop()
    n1.start().wait_mounted(20)  # the pair made at first start is kept
    with open(cert, "rb") as f:
        assert f.read() == first
    assert serving(n1, [n2], "b", b"b\n")
