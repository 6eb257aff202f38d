"""test_cluster.py: operating a cluster from the shell — the .raftfs/ control namespace and the
raftfs CLI (status, member, lease, put, compact, snapshot, alarm, watch, get) — and files bound to
leases: deleted on every member when the lease expires or is revoked, kept while kept alive, and
ephemeral files that go with the member that made them.
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

import harness


def run(binary, *args, input=None, timeout=30):
    return subprocess.run([binary, *args], capture_output=True, text=input is not None or None,
                          input=input, timeout=timeout)


def ok(binary, *args, input=None):
    """Runs a subcommand that must succeed; returns its stdout (text)."""
    r = subprocess.run([binary, *args], capture_output=True, input=input, timeout=30)
    assert r.returncode == 0, f"raftfs {' '.join(args)}: {r.returncode}\n{r.stderr.decode()}"
    assert r.stderr == b"", r.stderr
    return r.stdout.decode(errors="replace")


def fails(binary, status, message, *args):
    """Runs a subcommand that must fail with status and a one-line message on stderr."""
    r = subprocess.run([binary, *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == status, (args, r.returncode, r.stdout, r.stderr)
    assert message in r.stderr, (args, r.stderr)
    assert r.stderr.count("\n") == 1 or status == 2, r.stderr
    assert r.stdout == ""
    return r.stderr


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def rev(mount):
    return int(os.getxattr(mount, "user.raftfs.revision"))


def test_status_and_the_control_namespace(cluster, raftfs_bin):
    n1, n2, n3 = cluster(3)
    status = os.path.join(n2.mountpoint, ".raftfs/status")
    assert wait_for(lambda: json.loads(read(status))["leader"] is not None)
    doc = json.loads(read(status))
    assert doc["member"] == "n2"
    assert sorted(m["name"] for m in doc["members"]) == ["n1", "n2", "n3"]
    assert all(m["role"] == "voter" for m in doc["members"])
    leaders = [m["name"] for m in doc["members"] if m["is_leader"]]
    assert leaders == [doc["leader"]] and doc["term"] >= 1
    assert doc["applied_index"] <= doc["commit_index"] <= doc["raft_index"]
    assert doc["revision"] == rev(n2.mountpoint) and doc["compact_revision"] == 0
    assert doc["alarms"] == []
    assert doc["replay_dropped"] == 0 and doc["replay_backlog"] >= 0
    assert doc["remote_inotify"] is True
    assert wait_for(lambda: json.loads(ok(raftfs_bin, "status", n2.mountpoint, "-w", "json"))
                    ["session_lease"] > 0)
    table = ok(raftfs_bin, "status", n1.mountpoint)
    assert table.startswith("member           n1 (")
    for name in ("n1", "n2", "n3"):
        assert f"  {name} " in table
    assert "voter (leader)" in table
    assert "\ninotify replay   " in table and " (0 dropped)\n" in table
    # hidden from listings, so cp -r, find and tar of the mount never meet it; nothing made in it
    assert ".raftfs" not in os.listdir(n1.mountpoint)
    assert sorted(os.listdir(os.path.join(n1.mountpoint, ".raftfs"))) == ["ctl", "session",
                                                                        "status"]
    for bad in (".raftfs/x", ".raftfs/status"):
        with pytest.raises(OSError) as e:
            with open(os.path.join(n1.mountpoint, bad), "w") as f:
                f.write("x")
        assert e.value.errno in (errno.EPERM, errno.EACCES), bad
    with pytest.raises(OSError) as e:
        os.mkdir(os.path.join(n1.mountpoint, ".raftfs/d"))
    assert e.value.errno == errno.EPERM
    fails(raftfs_bin, 1, "is not a raftfs mount", "status", "/tmp")
    fails(raftfs_bin, 2, "usage: raftfs status", "status")
    fails(raftfs_bin, 2, "-w takes json or table", "status", n1.mountpoint, "-w", "yaml")


def test_leases_grant_ttl_list_keepalive_revoke(cluster, raftfs_bin):
    n1, n2, n3 = cluster(3)
    out = ok(raftfs_bin, "lease", "grant", n1.mountpoint, "30", "-w", "json")
    lease = json.loads(out)
    assert lease["ttl"] == 30 and lease["id"] > 0
    lid = str(lease["id"])
    assert ok(raftfs_bin, "lease", "grant", n2.mountpoint, "2").startswith("lease ")
    # every member knows it, with its remaining time
    assert wait_for(lambda: run(raftfs_bin, "lease", "ttl", n3.mountpoint, lid).returncode == 0)
    ttl = json.loads(ok(raftfs_bin, "lease", "ttl", n3.mountpoint, lid, "-w", "json"))
    assert ttl["ttl"] == 30 and 25 <= ttl["remaining"] <= 30 and ttl["keys"] == 0
    listed = json.loads(ok(raftfs_bin, "lease", "list", n2.mountpoint, "-w", "json"))
    assert lease["id"] in [x["id"] for x in listed["leases"]]
    assert f"lease {lid} kept alive with TTL 30s" in ok(raftfs_bin, "lease", "keepalive",
                                                        n2.mountpoint, lid, "--once")
    assert ok(raftfs_bin, "lease", "revoke", n3.mountpoint, lid) == f"lease {lid} revoked\n"
    fails(raftfs_bin, 1, f"lease {lid} not found", "lease", "revoke", n1.mountpoint, lid)
    fails(raftfs_bin, 1, f"lease {lid} not found", "lease", "ttl", n1.mountpoint, lid)
    fails(raftfs_bin, 1, "not found", "lease", "keepalive", n1.mountpoint, lid, "--once")
    fails(raftfs_bin, 2, "is not a lease id", "lease", "revoke", n1.mountpoint, "abc")
    fails(raftfs_bin, 2, "is not a TTL", "lease", "grant", n1.mountpoint, "-5")
    fails(raftfs_bin, 2, "unknown subcommand 'renew'", "lease", "renew", n1.mountpoint, "1")
    fails(raftfs_bin, 2, "usage: raftfs lease", "lease", "grant", n1.mountpoint)


def test_lease_bound_file_goes_everywhere_when_its_lease_expires(cluster, raftfs_bin):
    n1, n2, n3 = cluster(3)
    lid = str(json.loads(ok(raftfs_bin, "lease", "grant", n1.mountpoint, "5", "-w", "json"))["id"])
    kept = str(json.loads(ok(raftfs_bin, "lease", "grant", n1.mountpoint, "5", "-w", "json"))["id"])
    f, g = os.path.join(n1.mountpoint, "lock"), os.path.join(n1.mountpoint, "kept")
    write(f, b"holder n1\n")
    os.setxattr(f, "user.raftfs.lease", lid.encode())
    os.setxattr(f, "user.note", b"with the file")
    ok(raftfs_bin, "put", g, "--lease", kept, input=b"kept alive\n")
    for m in (n2, n3):
        p = os.path.join(m.mountpoint, "lock")
        assert wait_for(lambda: read(p) == b"holder n1\n")
        assert wait_for(lambda: os.getxattr(p, "user.raftfs.lease").decode() == lid)
        assert os.getxattr(os.path.join(m.mountpoint, "kept"), "user.raftfs.lease").decode() == kept
    # a write keeps the file on its lease
    write(f, b"holder n1, again\n")
    assert os.getxattr(f, "user.raftfs.lease").decode() == lid
    keeper = subprocess.Popen([raftfs_bin, "lease", "keepalive", n2.mountpoint, kept],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        started = time.monotonic()
        for m in (n1, n2, n3):
            assert wait_for(lambda: read(os.path.join(m.mountpoint, "lock")) is None, 12), m.name
        assert time.monotonic() - started >= 3  # not before its TTL
        # its attribute went with it: a new file of that name starts bare
        write(f, b"new\n")
        assert os.listxattr(f) == []
        time.sleep(6)  # past the TTL: the kept-alive lease holds its file
        for m in (n1, n2, n3):
            assert read(os.path.join(m.mountpoint, "kept")) == b"kept alive\n", m.name
    finally:
        keeper.terminate()
        keeper.wait(10)
    for m in (n1, n2, n3):
        assert wait_for(lambda: read(os.path.join(m.mountpoint, "kept")) is None, 12), m.name
    # binding to a lease that does not exist, or a directory, is refused and changes nothing
    with pytest.raises(OSError) as e:
        os.setxattr(f, "user.raftfs.lease", b"123456789")
    assert e.value.errno == errno.EINVAL
    os.mkdir(os.path.join(n1.mountpoint, "dir"))
    with pytest.raises(OSError) as e:
        os.setxattr(os.path.join(n1.mountpoint, "dir"), "user.raftfs.lease", kept.encode())
    assert e.value.errno == errno.EPERM
    with pytest.raises(OSError) as e:
        os.setxattr(f, "user.raftfs.lease", b"soon")
    assert e.value.errno == errno.EINVAL
    assert os.getxattr(f, "user.raftfs.lease") == b"0" and read(f) == b"new\n"


def test_ephemeral_file_goes_with_its_member(cluster, raftfs_bin):
    n1, n2, n3 = cluster(3, extra=("--session-ttl", "5"))
    session = os.path.join(n2.mountpoint, ".raftfs/session")
    assert wait_for(lambda: read(session) not in (None, b""))
    sid = read(session).strip()
    p = os.path.join(n2.mountpoint, "services/n2")
    os.makedirs(os.path.dirname(p))
    write(p, b"127.0.0.1:8080\n")
    os.setxattr(p, "user.raftfs.lease", sid)
    other = os.path.join(n1.mountpoint, "services/n2")
    assert wait_for(lambda: read(other) == b"127.0.0.1:8080\n")
    time.sleep(6)  # the member keeps its session alive
    assert read(other) == b"127.0.0.1:8080\n"
    n2.kill(signal.SIGKILL)
    killed = time.monotonic()
    for m in (n1, n3):
        assert wait_for(lambda: read(os.path.join(m.mountpoint, "services/n2")) is None, 12)
    assert time.monotonic() - killed <= 5 + 1 + 3  # TTL + election + slack
    assert os.listdir(os.path.join(n1.mountpoint, "services")) == []
    # a clean unmount revokes the session at once
    sid3 = read(os.path.join(n3.mountpoint, ".raftfs/session")).strip()
    q = os.path.join(n3.mountpoint, "services/n3")
    write(q, b"n3\n")
    os.setxattr(q, "user.raftfs.lease", sid3)
    assert wait_for(lambda: read(os.path.join(n1.mountpoint, "services/n3")) == b"n3\n")
    n3.stop()
    assert n3.proc.returncode == 0
    assert wait_for(lambda: read(os.path.join(n1.mountpoint, "services/n3")) is None, 3)


FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def test_a_jumped_clock_expires_no_lease_early_and_none_late(cluster, ws, raftfs_bin):
    """Members' wall clocks jumped forward and back (libfaketime, as an NTP step does; the
    monotonic clock stays true): a lease kept alive is kept on any leader, and one no longer kept
    alive goes after its TTL, whichever member's clock proposed its renewals."""
    if not os.path.exists(FAKETIME_LIB):
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    clocks = {}

    def env(name):
        clocks[name] = ws.path(name + ".faketime")
        write(clocks[name], b"+0\n")
        e = dict(os.environ, LD_PRELOAD=FAKETIME_LIB, FAKETIME_TIMESTAMP_FILE=clocks[name],
                 FAKETIME_DONT_FAKE_MONOTONIC="1", FAKETIME_CACHE_DURATION="1")
        e["ASAN_OPTIONS"] = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                   "verify_asan_link_order=0"]))
        return e

    members = cluster(3, extra=("--session-ttl", "5"), env=env)
    by_name = {m.name: m for m in members}
    status = os.path.join(members[0].mountpoint, ".raftfs/status")
    assert wait_for(lambda: json.loads(read(status))["leader"] is not None)
    leader = by_name[json.loads(read(status))["leader"]]
    followers = [m for m in members if m is not leader]
    ttl = 6
    lid = str(json.loads(ok(raftfs_bin, "lease", "grant", leader.mountpoint, str(ttl), "-w",
                            "json"))["id"])
    ok(raftfs_bin, "put", os.path.join(leader.mountpoint, "held"), "--lease", lid,
       input=b"kept alive by its holder\n")
    eph = followers[0]
    session = os.path.join(eph.mountpoint, ".raftfs/session")
    assert wait_for(lambda: read(session) not in (None, b""))
    sid = read(session).strip()
    write(os.path.join(eph.mountpoint, "ephemeral"), b"on its member's session\n")
    os.setxattr(os.path.join(eph.mountpoint, "ephemeral"), "user.raftfs.lease", sid)
    names = ("held", "ephemeral")
    for m in members:
        for n in names:
            assert wait_for(lambda: read(os.path.join(m.mountpoint, n)) is not None), (m.name, n)

    def keep_alive_and_check(seconds):
        """Renews the lease through each member in turn every second; both files must stay on
        every member. Returns when the last renewal that succeeded began."""
        last = None
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for m in members:
                began = time.monotonic()
                r = run(raftfs_bin, "lease", "keepalive", m.mountpoint, lid, "--once")
                assert r.returncode == 0, (m.name, r.stderr)
                last = began
                for o in members:
                    for n in names:
                        assert read(os.path.join(o.mountpoint, n)) is not None, \
                            f"{n} gone on {o.name} with the clocks at {clock_text()}"
                time.sleep(0.3)
        return last

    def clock_text():
        return ", ".join(f"{n} {open(p).read().strip()}" for n, p in sorted(clocks.items()))

    def jump(m, offset):
        write(clocks[m.name], offset.encode() + b"\n")

    # the leader an hour ahead, a follower an hour behind: renewals proposed on either
    jump(leader, "+1h")
    jump(followers[1], "-1h")
    keep_alive_and_check(ttl + 3)  # past the clock's re-read and past a TTL
    # and back: the leader two hours back, the follower two ahead
    jump(leader, "-1h")
    jump(followers[1], "+1h")
    last = keep_alive_and_check(4)
    # no longer kept alive: the lease goes one TTL after its last renewal (not before, and not an
    # hour later), while the session lease of a live member stays
    for m in members:
        p = os.path.join(m.mountpoint, "held")
        assert wait_for(lambda: read(p) is None, last + ttl + 4 - time.monotonic()), \
            f"lease {lid} not expired on {m.name} with the clocks at {clock_text()}"
    assert time.monotonic() - last >= ttl - 0.5
    for m in members:
        assert read(os.path.join(m.mountpoint, "ephemeral")) == b"on its member's session\n"


def test_compact_get_and_watch_history(cluster, raftfs_bin):
    n1, n2, n3 = cluster(3)
    p = os.path.join(n1.mountpoint, "app.conf")
    revs = []
    for i in range(5):
        write(p, f"v{i}\n".encode())
        revs.append(int(os.getxattr(p, "user.raftfs.mod_revision")))
    first = int(os.getxattr(p, "user.raftfs.create_revision"))
    # every version until compaction, on any member
    for i, r in enumerate(revs):
        assert wait_for(lambda: run(raftfs_bin, "get", n3.mountpoint, "/app.conf", "--rev",
                                    str(r)).returncode == 0)
        assert ok(raftfs_bin, "get", n3.mountpoint, "/app.conf", "--rev", str(r)) == f"v{i}\n"
    assert ok(raftfs_bin, "get", n2.mountpoint, os.path.join(n2.mountpoint, "app.conf"),
              "--rev", str(revs[1])) == "v1\n"
    fails(raftfs_bin, 1, f"/app.conf did not exist at revision {first - 1}", "get",
          n1.mountpoint, "/app.conf", "--rev", str(first - 1))
    fails(raftfs_bin, 1, "is in the future", "get", n1.mountpoint, "/app.conf", "--rev",
          "999999")
    fails(raftfs_bin, 2, "is not a revision", "get", n1.mountpoint, "/app.conf", "--rev", "x")
    # a watch from a past revision replays exactly the history, in order
    w = subprocess.Popen([raftfs_bin, "watch", n2.mountpoint, "/app.conf", "--rev", str(first),
                          "-w", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        history = sorted({first, *revs})  # a create is written with its content at close
        events = [json.loads(w.stdout.readline()) for _ in history]
        write(p, b"live\n")
        live = json.loads(w.stdout.readline())
    finally:
        w.send_signal(signal.SIGINT)
        w.wait(10)
    assert [e["revision"] for e in events] == history
    assert all(e["type"] == "PUT" and e["key"] == "/app.conf" for e in events)
    assert [e["version"] for e in events] == list(range(1, len(history) + 1))
    assert live["revision"] > revs[-1] and live["value"] == "bGl2ZQo="  # base64 of "live\n"
    # compaction: old revisions go, with a clear error everywhere
    assert ok(raftfs_bin, "compact", n1.mountpoint, str(revs[2])) == \
        f"compacted revision {revs[2]}\n"
    for m in (n1, n2, n3):
        assert wait_for(lambda: json.loads(read(os.path.join(m.mountpoint, ".raftfs/status")))
                        ["compact_revision"] == revs[2])
        fails(raftfs_bin, 1, f"revision {revs[1]} of /app.conf was compacted", "get",
              m.mountpoint, "/app.conf", "--rev", str(revs[1]))
        assert ok(raftfs_bin, "get", m.mountpoint, "/app.conf", "--rev", str(revs[2])) == "v2\n"
    fails(raftfs_bin, 1, f"revision {revs[1]} was compacted", "watch", n1.mountpoint,
          "/app.conf", "--rev", str(revs[1]))
    fails(raftfs_bin, 1, "is compacted already", "compact", n1.mountpoint, str(revs[1]))
    fails(raftfs_bin, 1, "is in the future", "compact", n1.mountpoint, "999999")
    fails(raftfs_bin, 2, "is not a revision", "compact", n1.mountpoint, "-3")


def test_watch_prints_changes_as_they_happen(cluster, raftfs_bin):
    n1, n2 = cluster(2)
    os.mkdir(os.path.join(n1.mountpoint, "etc"))
    write(os.path.join(n1.mountpoint, "etc/a"), b"1")
    # from the revision after that write: n2 may not have applied it yet when the watch starts
    # (a member applies an entry once its commit is durable there, the proposer's own first)
    after = rev(n1.mountpoint) + 1
    w = subprocess.Popen([raftfs_bin, "watch", n2.mountpoint, "/etc/", "--prefix", "--rev",
                          str(after)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        write(os.path.join(n1.mountpoint, "etc/a"), b"12345")
        os.rename(os.path.join(n1.mountpoint, "etc/a"), os.path.join(n1.mountpoint, "etc/b"))
        os.unlink(os.path.join(n1.mountpoint, "etc/b"))
        lines = [w.stdout.readline().split() for _ in range(4)]
    finally:
        w.send_signal(signal.SIGINT)
        w.wait(10)
    # new content, rename (one revision: put b, delete a), delete
    assert [(l[0], l[1]) for l in lines] == [("PUT", "/etc/a"), ("DELETE", "/etc/a"),
                                             ("PUT", "/etc/b"), ("DELETE", "/etc/b")]
    assert "size=5" in lines[0] and lines[1][2] == lines[2][2]  # the rename's one revision
    revs = [int(l[2].split("=")[1]) for l in lines]
    assert revs[0] < revs[1] == revs[2] < revs[3]
    assert w.returncode != 0 and "Traceback" not in w.stderr


def test_member_list_add_promote_remove(cluster, ws, raftfs_bin):
    n1, n2, n3 = cluster(3)
    listed = ok(raftfs_bin, "member", "list", n1.mountpoint).splitlines()
    assert listed[0].split() == ["ID", "NAME", "PEER", "ROLE"] and len(listed) == 4
    port = harness.free_port()
    out = ok(raftfs_bin, "member", "add", n2.mountpoint, f"n4=127.0.0.1:{port}", "--learner")
    assert "member n4 (" in out and "added as a learner" in out
    initial = out.split("--initial-cluster ")[1].strip()
    assert initial.count("=") == 4 and f"n4=127.0.0.1:{port}" in initial
    mp = ws.path("n4")
    argv = harness.member_argv(raftfs_bin, "n4", ws.path("n4.data"), port, initial, mp,
                               ("--initial-cluster-state", "existing"))
    n4 = ws.add(harness.Daemon("n4", argv, mp, ws.root)).start()
    write(os.path.join(n1.mountpoint, "during"), b"written while n4 joins\n")
    n4.wait_mounted(30)
    assert wait_for(lambda: read(os.path.join(n4.mountpoint, "during")) ==
                    b"written while n4 joins\n", 10)
    doc = json.loads(ok(raftfs_bin, "member", "list", n1.mountpoint, "-w", "json"))
    assert {m["name"]: m["role"] for m in doc["members"]}["n4"] == "learner"
    fails(raftfs_bin, 1, "'n1' is a voter already", "member", "promote", n1.mountpoint, "n1")
    assert "promoted to voter" in ok(raftfs_bin, "member", "promote", n1.mountpoint, "n4")
    doc = json.loads(read(os.path.join(n4.mountpoint, ".raftfs/status")))
    assert wait_for(lambda: {m["name"]: m["role"] for m in json.loads(
        read(os.path.join(n4.mountpoint, ".raftfs/status")))["members"]}.get("n4") == "voter")
    # remove a follower (a proposal forwarded to a leader that removes itself can be lost:
    # see the note of issue 6)
    leader = json.loads(read(os.path.join(n1.mountpoint, ".raftfs/status")))["leader"]
    gone = next(m for m in (n3, n2) if m.name != leader)
    stay = n2 if gone is n3 else n3
    gone.expect_error(r"this member \(\w+\)(: it)? was removed from the cluster")
    assert "removed" in ok(raftfs_bin, "member", "remove", n1.mountpoint, gone.name)
    assert wait_for(lambda: gone.proc.poll() is not None, 15)  # a removed member stops itself
    assert gone.proc.returncode == 0
    gone.teardown_steps.clear()
    write(os.path.join(n1.mountpoint, "after"), b"three voters\n")
    assert wait_for(lambda: read(os.path.join(n4.mountpoint, "after")) == b"three voters\n")
    names = [m["name"] for m in json.loads(read(os.path.join(n1.mountpoint,
                                                             ".raftfs/status")))["members"]]
    assert sorted(names) == sorted(["n1", stay.name, "n4"])
    fails(raftfs_bin, 1, "no member 'n9' in the cluster", "member", "remove", n1.mountpoint, "n9")
    fails(raftfs_bin, 1, "a member named 'n1' already exists", "member", "add", n1.mountpoint,
          "n1=127.0.0.1:1")
    fails(raftfs_bin, 2, "usage: raftfs member", "member", "add", n1.mountpoint, "n5")
    fails(raftfs_bin, 2, "unknown subcommand 'rename'", "member", "rename", n1.mountpoint, "x")


def test_a_member_removed_and_added_back_under_its_name_joins_and_stays(cluster, ws, raftfs_bin):
    """The same name and address give the same member id: the member added back replays the
    leader's whole log, its own old removals included, and must not take them for its own."""
    members = cluster(3)
    status = os.path.join(members[0].mountpoint, ".raftfs/status")
    assert wait_for(lambda: json.loads(read(status))["leader"] is not None)
    leader = json.loads(read(status))["leader"]
    gone = next(m for m in members if m.name != leader)
    via = next(m for m in members if m is not gone)
    for round_ in range(2):  # twice: the log then holds two removals of it and one addition
        gone.expect_error(r"this member \(\w+\)(: it)? was removed from the cluster")
        assert "removed" in ok(raftfs_bin, "member", "remove", via.mountpoint, gone.name)
        assert wait_for(lambda: gone.proc.poll() is not None, 15)
        assert gone.proc.returncode == 0
        gone.teardown_steps.clear()
        write(os.path.join(via.mountpoint, f"while-out-{round_}"), b"x" * (round_ + 1))
        if round_ == 0:
            # restarted on its data dir it learns again that it was removed, and stops cleanly
            said = gone.stderr().count("was removed from the cluster")
            gone.start()
            assert wait_for(lambda: gone.proc.poll() is not None, 15)
            assert gone.proc.returncode == 0, gone.stderr()[-2000:]
            assert gone.stderr().count("was removed from the cluster") > said
            gone.teardown_steps.clear()
        shutil.rmtree(gone.argv[gone.argv.index("--data-dir") + 1])
        out = ok(raftfs_bin, "member", "add", via.mountpoint,
                 f"{gone.name}={gone.argv[gone.argv.index('--listen-peer') + 1]}", "--learner")
        assert "added as a learner" in out
        gone.argv[gone.argv.index("--initial-cluster-token"):
                  gone.argv.index("--initial-cluster-token")] = ["--initial-cluster-state",
                                                                 "existing"]
        gone.start()
        gone.wait_mounted(30)
        assert "promoted" in ok(raftfs_bin, "member", "promote", via.mountpoint, gone.name)
        for i in range(round_ + 1):
            p = os.path.join(gone.mountpoint, f"while-out-{i}")
            assert wait_for(lambda: read(p) == b"x" * (i + 1), 10), gone.name
        time.sleep(3)  # past two election timeouts: it stays
        assert gone.proc.poll() is None, gone.stderr()[-3000:]
        write(os.path.join(gone.mountpoint, f"back-{round_}"), b"written on the member again")
        for m in members:
            assert wait_for(lambda: read(os.path.join(m.mountpoint, f"back-{round_}")) ==
                            b"written on the member again"), m.name
        gone.argv.remove("--initial-cluster-state")
        gone.argv.remove("existing")


def test_member_move_leader_hands_leadership_over(cluster, raftfs_bin):
    members = cluster(3)
    status = os.path.join(members[0].mountpoint, ".raftfs/status")
    assert wait_for(lambda: json.loads(read(status))["leader"] is not None)
    by_name = {m.name: m for m in members}
    leader = by_name[json.loads(read(status))["leader"]]
    a, b = [m for m in members if m is not leader]
    # asked on a follower (forwarded to the leader), to the other follower
    out = ok(raftfs_bin, "member", "move-leader", a.mountpoint, b.name)
    assert out.startswith(f"leadership moved to {b.name} (") and out.endswith(")\n"), out
    for m in members:
        st = os.path.join(m.mountpoint, ".raftfs/status")
        assert wait_for(lambda: json.loads(read(st))["leader"] == b.name), m.name
    write(os.path.join(leader.mountpoint, "after"), b"written under the new leader\n")
    assert wait_for(lambda: read(os.path.join(b.mountpoint, "after")) ==
                    b"written under the new leader\n")
    # asked on the leader, back to the first one, with the id and JSON
    lid = next(x["id"] for x in json.loads(read(status))["members"] if x["name"] == leader.name)
    doc = json.loads(ok(raftfs_bin, "member", "move-leader", b.mountpoint, lid, "-w", "json"))
    assert doc == {"leader": lid}
    assert wait_for(lambda: json.loads(read(status))["leader"] == leader.name)
    fails(raftfs_bin, 1, "it is the leader already", "member", "move-leader", a.mountpoint,
          leader.name)
    fails(raftfs_bin, 1, "no member 'n9' in the cluster", "member", "move-leader",
          a.mountpoint, "n9")
    ok(raftfs_bin, "member", "add", a.mountpoint, "n4=127.0.0.1:1", "--learner")
    fails(raftfs_bin, 1, "it is not a voter", "member", "move-leader", a.mountpoint, "n4")
    ok(raftfs_bin, "member", "remove", a.mountpoint, "n4")
    fails(raftfs_bin, 2, "usage: raftfs member", "member", "move-leader", a.mountpoint)


def test_member_added_after_compaction_gets_every_file_from_one_snapshot(cluster, ws, raftfs_bin):
    """Issue 23: the log was compacted before the add, so the new member needs a snapshot: the
    leader builds one naming it, sends it once (twice if leadership moves), and n4 serves every
    file with its content."""
    flags = ("--snapshot-count", "10", "--snapshot-catchup-entries", "5")
    members = cluster(3, extra=flags)
    n1 = members[0]
    files = {f"f{i:03d}": f"file {i}\n".encode() * (i + 1) for i in range(60)}
    for name, data in files.items():
        write(os.path.join(n1.mountpoint, name), data)
    time.sleep(1.0)  # the last snapshot is taken: an idle cluster whose snapshot predates n4
    port = harness.free_port()
    out = ok(raftfs_bin, "member", "add", n1.mountpoint, f"n4=127.0.0.1:{port}")
    n4_id = out.split("member n4 (")[1].split(")")[0]
    initial = out.split("--initial-cluster ")[1].strip()
    mp = ws.path("n4")
    argv = harness.member_argv(raftfs_bin, "n4", ws.path("n4.data"), port, initial, mp,
                               ("--initial-cluster-state", "existing", *flags))
    n4 = ws.add(harness.Daemon("n4", argv, mp, ws.root)).start()
    n4.wait_mounted(30)

    def served():
        try:
            return all(read(os.path.join(n4.mountpoint, n)) == d for n, d in files.items())
        except OSError:
            return False
    assert wait_for(served, 15)
    sent = sum(m.stderr().count(f"snapshot to {n4_id}: sent") for m in members)
    refused = n4.stderr().count("refused")
    assert 1 <= sent <= 2 and refused == 0, (sent, refused)
    status = json.loads(read(os.path.join(n4.mountpoint, ".raftfs/status")))
    assert status["applied_index"] > 0


def test_alarm_list_and_disarm(cluster, raftfs_bin):
    (m,) = cluster(1, extra=("--quota-backend-bytes", "300000"))
    assert ok(raftfs_bin, "alarm", "list", m.mountpoint) == ""
    assert ok(raftfs_bin, "alarm", "disarm", m.mountpoint) == "no alarm is raised\n"
    filled = 0
    with pytest.raises(OSError) as e:
        for i in range(100):
            write(os.path.join(m.mountpoint, f"f{i}"), b"x" * 20000)
            filled += 1
    assert e.value.errno == errno.ENOSPC and filled > 0
    assert ok(raftfs_bin, "alarm", "list", m.mountpoint) == "NOSPACE\n"
    assert json.loads(read(os.path.join(m.mountpoint, ".raftfs/status")))["alarms"] == ["NOSPACE"]
    with pytest.raises(OSError) as e:  # armed: refused before anything is proposed to apply
        write(os.path.join(m.mountpoint, "small"), b"x")
    assert e.value.errno == errno.ENOSPC
    for i in range(filled + 1):
        try:
            os.unlink(os.path.join(m.mountpoint, f"f{i}"))
        except FileNotFoundError:
            pass
    ok(raftfs_bin, "compact", m.mountpoint, str(rev(m.mountpoint)))
    assert ok(raftfs_bin, "alarm", "disarm", m.mountpoint) == "NOSPACE alarm disarmed\n"
    assert ok(raftfs_bin, "alarm", "list", m.mountpoint, "-w", "json") == '{"alarms":[]}\n'
    write(os.path.join(m.mountpoint, "again"), b"fits\n")
    fails(raftfs_bin, 2, "usage: raftfs alarm", "alarm", "raise", m.mountpoint)


def tree(root):
    """Every node under root: type and mode, content hash or link target, user xattrs, revisions."""
    import hashlib
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if os.path.islink(p):
                what = "-> " + os.readlink(p)
            elif os.path.isdir(p):
                what = "dir"
            else:
                what = hashlib.sha256(read(p)).hexdigest()
            # the kernel keeps user.* attributes off symlinks
            attrs = {} if os.path.islink(p) else {a: os.getxattr(p, a) for a in os.listxattr(p)}
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_uid, what, attrs)
    return out


def test_snapshot_save_and_restore_into_a_new_cluster(cluster, ws, raftfs_bin):
    n1, n2 = cluster(2)
    d = n1.mountpoint
    os.makedirs(os.path.join(d, "etc/app/conf.d"))
    for i in range(20):
        write(os.path.join(d, f"etc/app/conf.d/{i:02}.conf"), f"setting {i}\n".encode() * i)
    os.symlink("conf.d/07.conf", os.path.join(d, "etc/app/current"))
    os.setxattr(os.path.join(d, "etc/app/conf.d/03.conf"), "user.owner", b"team-a")
    os.chmod(os.path.join(d, "etc/app/conf.d/05.conf"), 0o600)
    os.mkdir(os.path.join(d, "empty"))
    assert wait_for(lambda: os.path.exists(os.path.join(n2.mountpoint, "empty")))
    snap = ws.path("snap.db")
    said = ok(raftfs_bin, "snapshot", "save", n2.mountpoint, snap)
    assert said == f"snapshot saved to {snap} ({len(read(snap))} bytes)\n"
    assert not os.path.exists(snap + ".part")
    before = tree(d)
    names = ["r1", "r2", "r3"]
    ports = [harness.free_port() for _ in names]
    initial = ",".join(f"{nm}=127.0.0.1:{p}" for nm, p in zip(names, ports))
    members = []
    for nm, port in zip(names, ports):
        data = ws.path(nm + ".data")
        out = ok(raftfs_bin, "restore", snap, "--name", nm, "--data-dir", data,
                 "--initial-cluster", initial, "--initial-cluster-token", "restored")
        assert out.startswith(f"restored {snap} (revision ")
        mp = ws.path(nm)
        argv = harness.member_argv(raftfs_bin, nm, data, port, initial, mp)
        members.append(ws.add(harness.Daemon(nm, argv, mp, ws.root)).start())
    for m in members:
        m.wait_mounted(20)
        assert tree(m.mountpoint) == before, m.name
    # a cluster of its own, that takes writes
    doc = json.loads(read(os.path.join(members[0].mountpoint, ".raftfs/status")))
    assert sorted(x["name"] for x in doc["members"]) == names
    write(os.path.join(members[0].mountpoint, "etc/new"), b"after restore\n")
    assert wait_for(lambda: read(os.path.join(members[2].mountpoint, "etc/new")) ==
                    b"after restore\n")
    assert read(os.path.join(n1.mountpoint, "etc/new")) is None
    fails(raftfs_bin, 1, f"data dir {ws.path('r1.data')} in use by pid", "restore", snap,
          "--name", "r1", "--data-dir", ws.path("r1.data"), "--initial-cluster", initial)
    members[0].stop()
    fails(raftfs_bin, 1, "holds a member already", "restore", snap, "--name", "r1",
          "--data-dir", ws.path("r1.data"), "--initial-cluster", initial)
    fails(raftfs_bin, 1, "is not a raftfs snapshot", "restore", "/etc/passwd", "--data-dir",
          ws.path("x.data"))
    assert not os.path.exists(ws.path("x.data"))
    fails(raftfs_bin, 2, "usage: raftfs restore", "restore", snap)
    fails(raftfs_bin, 1, "is not a raftfs mount", "snapshot", "save", "/tmp", ws.path("x"))
    assert not os.path.exists(ws.path("x"))


def test_automatic_compaction_by_revision(cluster, raftfs_bin):
    (m,) = cluster(1, extra=("--auto-compaction-mode", "revision",
                             "--auto-compaction-retention", "10"))
    for i in range(30):
        write(os.path.join(m.mountpoint, "f"), str(i).encode())
    target = rev(m.mountpoint) - 10
    assert wait_for(lambda: json.loads(read(os.path.join(m.mountpoint, ".raftfs/status")))
                    ["compact_revision"] >= target, 5)


def test_automatic_compaction_periodic(cluster, raftfs_bin):
    (m,) = cluster(1, extra=("--auto-compaction-mode", "periodic",
                             "--auto-compaction-retention", "2s"))
    p = os.path.join(m.mountpoint, "f")
    write(p, b"old")
    old = rev(m.mountpoint)
    status = os.path.join(m.mountpoint, ".raftfs/status")
    time.sleep(1)
    assert json.loads(read(status))["compact_revision"] == 0  # younger than the retention
    write(p, b"new")
    # the revision current two seconds ago goes, and with it what came before
    assert wait_for(lambda: json.loads(read(status))["compact_revision"] >= old, 6)
    assert ok(raftfs_bin, "get", m.mountpoint, "/f", "--rev", str(rev(m.mountpoint))) == "new"


def test_bad_compaction_flags_are_usage_errors(raftfs_bin, ws):
    for args, message in ((("--auto-compaction-mode", "hourly"), "neither periodic nor revision"),
                          (("--auto-compaction-mode", "periodic", "--auto-compaction-retention",
                            "5x"), "is not a duration"),
                          (("--auto-compaction-retention", "5"), "needs --auto-compaction-mode"),
                          (("--session-ttl", "0"), "is not a positive number")):
        r = run(raftfs_bin, "mount", *args, ws.path("m"))
        assert r.returncode == 2, args
        assert message in r.stderr.decode()
