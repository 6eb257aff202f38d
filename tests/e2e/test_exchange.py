"""test_exchange.py: renameat2(RENAME_EXCHANGE) on the mount, as ext4 and tmpfs do it.

Two names trade places atomically: two files, two directories with their trees, a file and a
directory. Each exchange is one revision on every member; other members' watchers see it as the
kernel shows a local exchange (two MOVED_FROM/MOVED_TO pairs), and readers on another member
never see a name missing nor both names holding the same file. The errors are pinned against a
local ext4 (the test's tmp_path) and tmpfs (/dev/shm) directory.
"""

import ctypes
import ctypes.util
import errno
import json
import os
import signal
import stat
import subprocess
import threading
import time

import test_inotify
from test_inotify import Inotify, read, write

AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                            ctypes.c_uint]


def renameat2(a, b, flags=RENAME_EXCHANGE):
    """0, or the errno of renameat2(AT_FDCWD, a, AT_FDCWD, b, flags)."""
    rc = _libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags)
    return 0 if rc == 0 else ctypes.get_errno()


def exchange(a, b):
    rc = renameat2(a, b)
    if rc:
        raise OSError(rc, f"renameat2({a}, {b}, RENAME_EXCHANGE)")


def wait_for(cond, timeout=5.0):
    return test_inotify.wait_for(cond, timeout)


def revision(mount):
    return int(os.getxattr(mount, "user.raftfs.revision"))


def replay_idle(mount):
    with open(os.path.join(mount, ".raftfs/status")) as f:
        return json.load(f)["replay_backlog"] == 0


def start_watch(raftfs_bin, mount, rev):
    return subprocess.Popen([raftfs_bin, "watch", mount, "/", "--prefix", "--rev", str(rev),
                             "-w", "json"], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    return proc.communicate(timeout=5)[0]


def test_exchange_of_two_files_everywhere_at_one_revision(cluster, raftfs_bin):
    # two files of different lengths, modes and attributes trade places; the member that did it
    # shows both at once, the others after the apply; `raftfs watch` shows both keys at one
    # revision; every member's watcher sees what the kernel raises for a local exchange
    n1, n2, n3 = cluster(3)
    a, b = os.path.join(n1.mountpoint, "a"), os.path.join(n1.mountpoint, "b")
    write(a, "short a\n")
    write(b, "the longer content of b, of another length\n")
    os.chmod(a, 0o600)
    os.chmod(b, 0o755)
    os.setxattr(a, "user.tag", b"from a")
    made = revision(n1.mountpoint)
    for m in (n2, n3):  # every change above applied and replayed before anyone watches
        assert wait_for(lambda: revision(m.mountpoint) == made and replay_idle(m.mountpoint))
    watchers, fds, procs = {}, [], []
    try:
        for m in (n1, n2, n3):
            watchers[m.name] = Inotify()
            watchers[m.name].watch(m.mountpoint, "/")
        waiter = subprocess.Popen(["inotifywait", "-m", "-e", "moved_from,moved_to",
                                   n3.mountpoint], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True)
        procs.append(waiter)
        assert "Watches established" in waiter.stderr.readline() + waiter.stderr.readline()
        fds += [os.open(a, os.O_RDONLY), os.open(b, os.O_RDONLY)]  # hold the inodes
        rev = revision(n1.mountpoint)
        watch = start_watch(raftfs_bin, n2.mountpoint, rev + 1)
        procs.append(watch)
        exchange(a, b)
        # at once on this member: contents, metadata and attributes of each name are the other's
        assert read(a) == "the longer content of b, of another length\n"
        assert read(b) == "short a\n"
        assert stat.S_IMODE(os.stat(a).st_mode) == 0o755
        assert stat.S_IMODE(os.stat(b).st_mode) == 0o600
        assert os.stat(a).st_size == 43 and os.stat(b).st_size == 8
        # each inode went with its file: a descriptor opened before follows it
        assert [os.fstat(fd).st_ino for fd in fds] == [os.stat(b).st_ino, os.stat(a).st_ino]
        assert os.pread(fds[0], 100, 0) == b"short a\n"
        assert os.getxattr(b, "user.tag") == b"from a"
        assert "user.tag" not in os.listxattr(a)
        # on the others once applied and replayed (until the replay has the kernel exchange the
        # names, the inodes stand for the names, not the files: ARCHITECTURE.md)
        for m in (n2, n3):
            ma, mb = os.path.join(m.mountpoint, "a"), os.path.join(m.mountpoint, "b")
            assert wait_for(lambda: revision(m.mountpoint) == rev + 1 and
                            replay_idle(m.mountpoint)), m.name
            assert read(mb) == "short a\n"
            assert read(ma) == "the longer content of b, of another length\n"
            assert stat.S_IMODE(os.stat(ma).st_mode) == 0o755
            assert stat.S_IMODE(os.stat(mb).st_mode) == 0o600
            assert os.stat(ma).st_size == 43 and os.stat(mb).st_size == 8
            assert os.getxattr(mb, "user.tag") == b"from a"
            assert int(os.getxattr(ma, "user.raftfs.mod_revision")) == rev + 1
            assert int(os.getxattr(mb, "user.raftfs.mod_revision")) == rev + 1
        # the local kernel's own events, and the same on the other members from their replay
        local = watchers["n1"]
        assert local.wait_for(("/", "a", "MOVED_TO"))
        expected = [("/", "a", "MOVED_FROM", 1), ("/", "b", "MOVED_TO", 1),
                    ("/", "b", "MOVED_FROM", 2), ("/", "a", "MOVED_TO", 2)]
        assert local.take() == expected
        for name in ("n2", "n3"):
            assert watchers[name].wait_for(("/", "a", "MOVED_TO")), name
            assert watchers[name].take() == expected, name
        lines = []
        assert wait_for(lambda: lines.append(waiter.stdout.readline()) or len(lines) == 4)
        assert [line.split()[1:] for line in lines] == \
            [["MOVED_FROM", "a"], ["MOVED_TO", "b"], ["MOVED_FROM", "b"], ["MOVED_TO", "a"]]
        # the watch stream: both names, deleted and put again, all at the one revision
        events = []
        while len(events) < 4:
            line = watch.stdout.readline()
            assert line, "raftfs watch ended"
            events.append(json.loads(line))
        assert {e["revision"] for e in events} == {rev + 1}
        assert sorted((e["type"], e["key"]) for e in events) == \
            [("DELETE", "/a"), ("DELETE", "/b"), ("PUT", "/a"), ("PUT", "/b")]
    finally:
        for fd in fds:
            os.close(fd)
        for proc in procs:
            stop(proc)
        for w in watchers.values():
            w.close()


def test_exchange_of_two_directories_and_of_a_file_with_a_directory(cluster):
    # trees of any shape trade places in one revision; on another member each directory keeps
    # its inode (and its watches) across the replayed exchange, as a local exchange does
    n1, n2, n3 = cluster(3)
    root = n1.mountpoint
    for path, text in [("x/f", "x's f\n"), ("x/s/g", "x's g\n"), ("p/y/f", "y's f, longer\n"),
                       ("p/y/t/h", "y's h\n")]:
        os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
        write(os.path.join(root, path), text)
    for i in range(200):
        write(os.path.join(root, "x", f"many{i:03d}"), f"{i}\n")
    write(os.path.join(root, "file"), "a plain file\n")
    far = os.path.join(n2.mountpoint, "p/y/t/h")
    assert wait_for(lambda: os.path.exists(far) and os.path.exists(os.path.join(
        n2.mountpoint, "file")) and replay_idle(n2.mountpoint), 10.0)
    held, w = [], Inotify()
    try:
        held += [os.open(os.path.join(n2.mountpoint, d), os.O_RDONLY) for d in ("x", "p/y")]
        x_ino, y_ino = (os.fstat(fd).st_ino for fd in held)
        w.watch(os.path.join(n2.mountpoint, "x"), "x-object")  # the directory, by its inode
        rev = revision(root)
        exchange(os.path.join(root, "x"), os.path.join(root, "p/y"))
        for m in (n1, n2, n3):
            d = m.mountpoint
            assert wait_for(lambda: revision(d) == rev + 1 and replay_idle(d)), m.name
            assert read(os.path.join(d, "x/f")) == "y's f, longer\n"
            assert read(os.path.join(d, "x/t/h")) == "y's h\n"
            assert read(os.path.join(d, "p/y/f")) == "x's f\n"
            assert read(os.path.join(d, "p/y/s/g")) == "x's g\n"
            assert sorted(os.listdir(os.path.join(d, "x"))) == ["f", "t"]
            assert len(os.listdir(os.path.join(d, "p/y"))) == 202
            assert read(os.path.join(d, "p/y/many123")) == "123\n"
            assert not os.path.exists(os.path.join(d, "x/s"))
            assert not os.path.exists(os.path.join(d, "p/y/t"))
            for path in ("x", "x/t/h", "p/y", "p/y/many000"):
                assert int(os.getxattr(os.path.join(d, path), "user.raftfs.mod_revision")) == \
                    rev + 1, (m.name, path)
        assert wait_for(lambda: replay_idle(n2.mountpoint))
        assert os.stat(os.path.join(n2.mountpoint, "p/y")).st_ino == x_ino
        assert os.stat(os.path.join(n2.mountpoint, "x")).st_ino == y_ino
        # the watch on x's directory follows it to p/y: a file made there now raises its events
        write(os.path.join(root, "p/y/new"), "made after\n")
        assert w.wait_for(("x-object", "new", "CLOSE_WRITE"))
        # a file with a directory, both ways round (on the other members once replayed: see
        # ARCHITECTURE.md on an exchange of a file with a directory before its replay)
        for step, (a, b, d_name, f_name) in enumerate([("file", "x", "file", "x"),
                                                       ("x", "file", "x", "file")]):
            exchange(os.path.join(root, a), os.path.join(root, b))
            for m in (n1, n2, n3):
                d = m.mountpoint
                assert wait_for(lambda: m is n1 or revision(d) == rev + 3 + step and
                                replay_idle(d)), m.name
                assert os.path.isdir(os.path.join(d, d_name)), m.name
                assert os.path.isfile(os.path.join(d, f_name)), m.name
                assert read(os.path.join(d, f_name)) == "a plain file\n"
                assert read(os.path.join(d, d_name, "t/h")) == "y's h\n"
                assert os.stat(os.path.join(d, d_name)).st_nlink == 3  # itself, ., t
    finally:
        w.close()
        for fd in held:
            os.close(fd)


def local_dirs(tmp_path):
    """Local directories to compare with: ext4 (the test's tmp_path) and tmpfs (/dev/shm)."""
    dirs = [str(tmp_path)]
    if os.path.isdir("/dev/shm"):
        shm = os.path.join("/dev/shm", f"raftfs-exchange-{os.getpid()}")
        os.makedirs(shm, exist_ok=True)
        dirs.append(shm)
    return dirs


def exchange_errors(d):
    """The errno of each refused (or allowed) exchange in a fresh tree under d."""
    os.makedirs(os.path.join(d, "dir/sub/in"))
    write(os.path.join(d, "f"), "f\n")
    write(os.path.join(d, "g"), "g\n")
    cases = {
        "missing target": ("f", "none", RENAME_EXCHANGE),
        "missing source": ("none", "f", RENAME_EXCHANGE),
        "with a descendant": ("dir", "dir/sub/in", RENAME_EXCHANGE),
        "with an ancestor": ("dir/sub/in", "dir", RENAME_EXCHANGE),
        "with NOREPLACE": ("f", "g", RENAME_EXCHANGE | RENAME_NOREPLACE),
        "with WHITEOUT": ("f", "g", RENAME_EXCHANGE | RENAME_WHITEOUT),
        "with itself": ("f", "f", RENAME_EXCHANGE),
        "file into a missing dir": ("f", "nodir/x", RENAME_EXCHANGE),
    }
    out = {k: renameat2(os.path.join(d, a), os.path.join(d, b), fl)
           for k, (a, b, fl) in cases.items()}
    out["contents kept"] = (read(os.path.join(d, "f")), read(os.path.join(d, "g")))
    return out


def test_exchange_errors_are_those_of_ext4_and_tmpfs(cluster, tmp_path):
    n1, n2 = cluster(2)
    got = exchange_errors(os.path.join(n1.mountpoint, "t"))
    assert got["missing target"] == errno.ENOENT
    assert got["with a descendant"] == errno.EINVAL
    assert got["with NOREPLACE"] == errno.EINVAL
    assert got["with itself"] == 0
    assert got["contents kept"] == ("f\n", "g\n")
    for d in local_dirs(tmp_path):
        try:
            assert exchange_errors(os.path.join(d, "t")) == got, d
        finally:
            subprocess.run(["rm", "-rf", os.path.join(d, "t")], check=True)
            if d.startswith("/dev/shm/"):
                os.rmdir(d)
    # nothing was proposed for the refused ones: the other member has the tree as made
    assert wait_for(lambda: read(os.path.join(n2.mountpoint, "t/g")) == "g\n")
    assert read(os.path.join(n2.mountpoint, "t/f")) == "f\n"


def test_exchange_racing_writes_on_another_member_loses_nothing(cluster):
    # n1 exchanges a and b over and over while n2 rewrites a: each exchange either happens whole
    # or fails with an error (a compare that kept failing); every member ends with the same two
    # names, each holding one of the values written, none of them twice
    n1, n2, n3 = cluster(3)
    a1, b1 = os.path.join(n1.mountpoint, "a"), os.path.join(n1.mountpoint, "b")
    write(a1, "a-initial\n")
    write(b1, "b-initial\n")
    a2 = os.path.join(n2.mountpoint, "a")
    assert wait_for(lambda: read(os.path.join(n2.mountpoint, "b")) == "b-initial\n")
    written = {"a-initial\n", "b-initial\n"}
    stop_writing = threading.Event()
    write_errors = []

    def writer():
        i = 0
        while not stop_writing.is_set():
            text = f"written by n2, {i}\n"
            try:
                write(a2, text)
                written.add(text)
            except OSError as e:
                write_errors.append(e.errno)
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    results = []
    try:
        for _ in range(150):
            results.append(renameat2(a1, b1))
    finally:
        stop_writing.set()
        t.join(timeout=30)
    assert not t.is_alive()
    assert set(results) <= {0, errno.EBUSY}, results
    assert results.count(0) > 0
    assert set(write_errors) <= {errno.ESTALE, errno.ENOENT}, write_errors
    # every member at the last revision any of them has, its replay done: the same two files
    last = max(revision(m.mountpoint) for m in (n1, n2, n3))
    final = None
    for m in (n1, n2, n3):
        names = (os.path.join(m.mountpoint, "a"), os.path.join(m.mountpoint, "b"))
        assert wait_for(lambda: revision(m.mountpoint) >= last and replay_idle(m.mountpoint))
        got = (read(names[0]), read(names[1]))
        final = final or got
        assert got == final, (m.name, got, final)
    assert final[0] != final[1] and set(final) <= written, final


def quiet_state(root):
    """(revision, replay backlog) of the member serving root."""
    with open(os.path.join(root, ".raftfs/status")) as f:
        doc = json.load(f)
    return doc["revision"], doc["replay_backlog"]


def test_exchanges_are_atomic_for_readers_on_another_member(cluster):
    # n1 exchanges two files again and again; readers on n2 and n3 read both names. A read never
    # finds a name missing nor a content that is neither file's; and two reads between which the
    # member neither applied nor replayed anything (its revision the same, its replay idle before
    # and after) show one state of the cluster: never one file under both names. (Without that
    # bracket, a read of a, an exchange, then a read of b show one file twice on ext4 as well;
    # and on another member the exchange reaches the kernel's names when it is replayed.)
    n1, n2, n3 = cluster(3)
    one, two = "one: " + "1" * 50 + "\n", "two: " + "2" * 3000 + "\n"
    a1, b1 = os.path.join(n1.mountpoint, "a"), os.path.join(n1.mountpoint, "b")
    write(a1, one)
    write(b1, two)
    for m in (n2, n3):
        assert wait_for(lambda: read(os.path.join(m.mountpoint, "b")) == two)
    done = threading.Event()
    problems, checked = [], []

    def reader(m):
        root = m.mountpoint
        a, b = os.path.join(root, "a"), os.path.join(root, "b")
        n = 0
        while not done.is_set():
            s1 = quiet_state(root)
            ra, rb = read(a), read(b)
            s2 = quiet_state(root)
            if ra not in (one, two) or rb not in (one, two):
                problems.append((m.name, s1, s2, ra and ra[:8], rb and rb[:8]))
            elif s1 == s2 and s1[1] == 0:
                n += 1
                if ra == rb:
                    problems.append((m.name, s1, "both names hold", ra[:8]))
        checked.append(n)

    readers = [threading.Thread(target=reader, args=(m,)) for m in (n2, n3)]
    for t in readers:
        t.start()
    try:
        for i in range(300):
            exchange(a1, b1)
            if i % 4 == 0:
                time.sleep(0.01)  # quiet moments, in which the bracketed check applies
    finally:
        done.set()
        for t in readers:
            t.join(timeout=30)
    assert not problems, problems[:10]
    assert len(checked) == 2 and min(checked) > 0, checked
    # 300 exchanges: every member, once it has applied and replayed them, ends where it began
    last = revision(n1.mountpoint)
    for m in (n1, n2, n3):
        assert wait_for(lambda: revision(m.mountpoint) == last and replay_idle(m.mountpoint),
                        10.0), m.name
        assert read(os.path.join(m.mountpoint, "a")) == one, m.name
        assert read(os.path.join(m.mountpoint, "b")) == two, m.name


def replay_backlog(mount):
    with open(os.path.join(mount, ".raftfs/status")) as f:
        return json.load(f)["replay_backlog"]


def test_a_write_opened_after_an_exchange_goes_to_its_name_when_its_late_replay_moves_it(
        cluster, monkeypatch):
    # n2 replays every change late (a test hook delays each by 700 ms). n1 exchanges a new file
    # into f and removes the temporary name. Once n2 shows the new f, a writer there opens f: a
    # new inode, made after the exchange applied. The exchange's replay then moves that inode to
    # the temporary name, as the kernel moves whatever it holds at the two names; the writer
    # closes before the temporary name's removal is replayed. Its content must go to f, the name
    # it opened once the exchange had applied, and the temporary name must stay gone. (It went to
    # the temporary name, bringing it back, and f kept the exchanged value.) 5 rounds.
    monkeypatch.setenv("RAFTFS_TEST_REPLAY_DELAY_MS", "700")
    n1, n2 = cluster(2)
    f1, f2 = (os.path.join(m.mountpoint, "f") for m in (n1, n2))
    t1, t2 = (os.path.join(m.mountpoint, ".f.tmp") for m in (n1, n2))
    write(f1, "start")
    assert wait_for(lambda: read(f2) == "start" and replay_idle(n2.mountpoint), 10.0)
    for i in range(5):
        exchanged, written = f"exchanged {i}" + "." * i, f"written on n2 in round {i}" + "!" * i
        write(t1, exchanged)
        exchange(t1, f1)
        os.unlink(t1)
        assert wait_for(lambda: read(f2) == exchanged, 5.0)
        fd = os.open(f2, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, written.encode())
            # the exchange replayed, the removal not yet: 2 changes queued behind the create,
            # 1 behind the exchange
            assert wait_for(lambda: replay_backlog(n2.mountpoint) <= 1, 10.0)
        finally:
            os.close(fd)
        assert wait_for(lambda: read(f1) == written, 5.0), read(f1)
        assert wait_for(lambda: replay_idle(n2.mountpoint), 10.0)
        assert not os.path.exists(t1) and not os.path.exists(t2)
        assert read(f2) == written
