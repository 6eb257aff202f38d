"""test_inotify.py: inotify watchers on one member see the changes made on other members.

Each remote change is replayed through the watcher's mount by its daemon (fs/replay/replay.c), so the
kernel raises genuine events. The watchers here are a small inotify reader over ctypes (it keeps
the move cookies, which inotifywait does not print), inotifywait itself, and entr. Every test
asserts the exact sequence of events, and that none comes twice: a change made on the watcher's
own member raises its events once, from the kernel, and is not replayed.
"""

import ctypes
import ctypes.util
import errno
import glob
import json
import os
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import threading
import time

import pytest

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

WATCHED = IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB
NAMES = [(IN_MODIFY, "MODIFY"), (IN_ATTRIB, "ATTRIB"), (IN_CLOSE_WRITE, "CLOSE_WRITE"),
         (IN_MOVED_FROM, "MOVED_FROM"), (IN_MOVED_TO, "MOVED_TO"), (IN_CREATE, "CREATE"),
         (IN_DELETE, "DELETE")]

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def wait_for(cond, timeout, step=0.005):
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


class Inotify:
    """An inotify instance over ctypes: events as (dir, name, kind, cookie)."""

    def __init__(self):
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.dirs = {}
        self.events = []

    def watch(self, path, label):
        wd = _libc.inotify_add_watch(self.fd, path.encode(), WATCHED)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
        self.dirs[wd] = label

    def poll(self, timeout=0.0):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return
        try:
            buf = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        off = 0
        while off < len(buf):
            wd, mask, cookie, length = struct.unpack_from("iIII", buf, off)
            name = buf[off + 16:off + 16 + length].rstrip(b"\0").decode()
            off += 16 + length
            if wd not in self.dirs:
                continue
            kind = "|".join(n for bit, n in NAMES if mask & bit)
            if not kind:
                continue  # IN_IGNORED and the like
            if mask & IN_ISDIR:
                kind += "|ISDIR"
            self.events.append((self.dirs[wd], name, kind, cookie))

    def wait_for(self, event, timeout=5.0):
        """Reads until (dir, name, kind) has come; then a moment more, to catch duplicates."""
        deadline = time.monotonic() + timeout
        while not any(e[:3] == event for e in self.events):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.poll(min(left, 0.1))
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            self.poll(0.05)
        return True

    def take(self):
        """The events so far, with cookies replaced by their order of appearance (0: none)."""
        seen, out = {}, []
        for d, name, kind, cookie in self.events:
            if cookie:
                cookie = seen.setdefault(cookie, len(seen) + 1)
            out.append((d, name, kind, cookie))
        self.events = []
        return out

    def close(self):
        os.close(self.fd)


@pytest.fixture
def inotify():
    made = []

    def make():
        i = Inotify()
        made.append(i)
        return i
    yield make
    for i in made:
        i.close()


def merged(events, create="CREATE", close="CLOSE_WRITE", modify="MODIFY", key=None):
    """events with every CREATE, CLOSE_WRITE, MODIFY, CLOSE_WRITE of one file as CREATE, MODIFY,
    CLOSE_WRITE: the replay raises a new file's create and the commit of its content either one
    after the other or, when the commit already waits behind the create, in one go (the events
    of a local `echo > f`). key(event) gives (name, kind) of an event."""
    key = key or (lambda e: (e[:2], e[2]))
    out, i = [], 0
    while i < len(events):
        w = events[i:i + 4]
        if len(w) == 4 and len({key(e)[0] for e in w}) == 1 and \
                [key(e)[1] for e in w] == [create, close, modify, close]:
            out += [w[0], w[2], w[3]]
            i += 4
        else:
            out.append(events[i])
            i += 1
    return out


def write(path, text, mode="w"):
    with open(path, mode) as f:
        f.write(text)


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


# What n1's changes below raise on a watcher of another member, in this order (after `merged`:
# writing a new file is two revisions, the create and the commit of its content at close).
REMOTE = [
    ("/", "f", "CREATE", 0), ("/", "f", "MODIFY", 0), ("/", "f", "CLOSE_WRITE", 0),
    ("/", "f", "MODIFY", 0), ("/", "f", "CLOSE_WRITE", 0),
    ("/", "d", "CREATE|ISDIR", 0),
    ("sub", "x", "CREATE", 0), ("sub", "x", "MODIFY", 0), ("sub", "x", "CLOSE_WRITE", 0),
    ("/", "f", "ATTRIB", 0),
    ("sub", "x", "ATTRIB", 0),
    ("/", "f", "MOVED_FROM", 1), ("/", "f2", "MOVED_TO", 1),
    ("/", "d", "MOVED_FROM|ISDIR", 2), ("/", "d2", "MOVED_TO|ISDIR", 2),
    ("/", "f2", "MOVED_FROM", 3), ("sub", "y", "MOVED_TO", 3),
    ("sub", "y", "DELETE", 0),
    ("/", "d2", "DELETE|ISDIR", 0),
    ("/", "l", "CREATE", 0),
    ("/", "l", "DELETE", 0),
    # an editor's save: write a temporary file, rename it over the original
    ("sub", "x.tmp", "CREATE", 0), ("sub", "x.tmp", "MODIFY", 0),
    ("sub", "x.tmp", "CLOSE_WRITE", 0),
    ("sub", "x.tmp", "MOVED_FROM", 4), ("sub", "x", "MOVED_TO", 4),
    ("/", "end", "CREATE", 0), ("/", "end", "CLOSE_WRITE", 0),
]


def changes(root):
    """The changes whose events REMOTE lists, made through the mount at root."""
    write(os.path.join(root, "f"), "hello\n")
    write(os.path.join(root, "f"), "more\n", "a")
    os.mkdir(os.path.join(root, "d"))
    write(os.path.join(root, "sub/x"), "x\n")
    os.chmod(os.path.join(root, "f"), 0o600)
    os.utime(os.path.join(root, "sub/x"), (1000000000, 1000000000))
    os.rename(os.path.join(root, "f"), os.path.join(root, "f2"))
    os.rename(os.path.join(root, "d"), os.path.join(root, "d2"))
    os.rename(os.path.join(root, "f2"), os.path.join(root, "sub/y"))
    os.unlink(os.path.join(root, "sub/y"))
    os.rmdir(os.path.join(root, "d2"))
    os.symlink("sub", os.path.join(root, "l"))
    os.unlink(os.path.join(root, "l"))
    write(os.path.join(root, "sub/x.tmp"), "saved\n")
    os.rename(os.path.join(root, "sub/x.tmp"), os.path.join(root, "sub/x"))
    os.close(os.open(os.path.join(root, "end"), os.O_CREAT | os.O_WRONLY, 0o644))


@pytest.mark.parametrize("clone", [True, False], ids=["clone", "by-path"])
def test_remote_changes_raise_inotify_events_in_order(cluster, inotify, monkeypatch, clone):
    # by-path: the replay's fallback without CAP_SYS_ADMIN (no clone of the mount), forced
    if not clone:
        monkeypatch.setenv("RAFTFS_TEST_REPLAY_NO_CLONE", "1")
    n1, n2, n3 = cluster(3)
    watchers = []
    for m in (n1, n2, n3):
        w = inotify()
        w.watch(m.mountpoint, "/")
        watchers.append(w)
    os.mkdir(os.path.join(n1.mountpoint, "sub"))
    for m, w in zip((n1, n2, n3), watchers):
        # once its event came, the replay of the mkdir is over: nothing of it comes later
        assert w.wait_for(("/", "sub", "CREATE|ISDIR"))
        assert w.take() == [("/", "sub", "CREATE|ISDIR", 0)]
        w.watch(os.path.join(m.mountpoint, "sub"), "sub")
    changes(n1.mountpoint)
    for w in watchers:
        assert w.wait_for(("/", "end", "CLOSE_WRITE")), w.take()
    local, got2, got3 = (merged(w.take()) for w in watchers)
    assert got2 == REMOTE
    assert got3 == REMOTE
    # n1's own watcher saw n1's changes once each, from its kernel: no replay on top
    for ev in [("/", "f", "CREATE", 0), ("/", "f", "ATTRIB", 0), ("sub", "y", "DELETE", 0),
               ("/", "d2", "DELETE|ISDIR", 0), ("/", "l", "CREATE", 0)]:
        assert local.count(ev) == 1, local
    assert [e for e in local if e[2].startswith("MOVED")] == [e for e in REMOTE
                                                             if e[2].startswith("MOVED")]
    for m in (n1, n2, n3):
        assert "inotify replay" not in m.stderr()  # no replay failed, none was dropped
        assert ("without a clone" in m.stderr()) != clone
        assert read(os.path.join(m.mountpoint, "sub/x")) == "saved\n"


def test_local_changes_raise_their_events_once(cluster, inotify):
    n1, n2 = cluster(2)
    w2, w1 = inotify(), inotify()
    w2.watch(n2.mountpoint, "/")
    w1.watch(n1.mountpoint, "/")
    p = os.path.join(n2.mountpoint, "own")
    write(p, "mine\n")
    os.chmod(p, 0o640)
    os.rename(p, p + "2")
    os.mkdir(p + "d")
    os.rmdir(p + "d")
    os.unlink(p + "2")
    assert w2.wait_for(("/", "ownd", "DELETE|ISDIR"))
    assert w1.wait_for(("/", "own2", "DELETE"))
    # the kernel's own events on n2: one write(2), so one MODIFY, and nothing replayed again
    assert w2.take() == [
        ("/", "own", "CREATE", 0), ("/", "own", "MODIFY", 0), ("/", "own", "CLOSE_WRITE", 0),
        ("/", "own", "ATTRIB", 0),
        ("/", "own", "MOVED_FROM", 1), ("/", "own2", "MOVED_TO", 1),
        ("/", "ownd", "CREATE|ISDIR", 0), ("/", "ownd", "DELETE|ISDIR", 0),
        ("/", "own2", "DELETE", 0),
    ]
    # and n1, for which they are remote, sees them replayed
    assert merged(w1.take()) == [
        ("/", "own", "CREATE", 0), ("/", "own", "MODIFY", 0), ("/", "own", "CLOSE_WRITE", 0),
        ("/", "own", "ATTRIB", 0),
        ("/", "own", "MOVED_FROM", 1), ("/", "own2", "MOVED_TO", 1),
        ("/", "ownd", "CREATE|ISDIR", 0), ("/", "ownd", "DELETE|ISDIR", 0),
        ("/", "own2", "DELETE", 0),
    ]


def test_inotifywait_recursive_sees_remote_tree(cluster, tmp_path):
    if not shutil.which("inotifywait"):
        pytest.fail("inotifywait (inotify-tools) is not installed")
    n1, n2 = cluster(2)
    out, err = tmp_path / "events", tmp_path / "stderr"
    with open(out, "w") as f, open(err, "w") as e:
        proc = subprocess.Popen(
            ["inotifywait", "-m", "-r", "--format", "%e %w%f",
             "-e", "create,modify,close_write,delete,moved_from,moved_to,attrib",
             n2.mountpoint], stdout=f, stderr=e, start_new_session=True)
    try:
        # inotifywait says "Watches established." on stderr once it is ready
        assert wait_for(lambda: "established" in err.read_text(), 5.0), err.read_text()
        root = n1.mountpoint
        os.mkdir(os.path.join(root, "etc"))
        # the new directory's watch is added by inotifywait after it sees the CREATE
        assert wait_for(lambda: "CREATE,ISDIR" in out.read_text(), 2.0)
        time.sleep(0.3)
        write(os.path.join(root, "etc/app.conf"), "a=1\n")
        os.rename(os.path.join(root, "etc"), os.path.join(root, "conf"))
        write(os.path.join(root, "conf/app.conf"), "a=2\n")
        os.unlink(os.path.join(root, "conf/app.conf"))
        m = n2.mountpoint
        assert wait_for(lambda: f"DELETE {m}/conf/app.conf" in out.read_text(), 5.0), \
            out.read_text()
        time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    lines = merged(out.read_text().splitlines(), close="CLOSE_WRITE,CLOSE",
                   key=lambda line: (line.split(" ", 1)[1], line.split(" ", 1)[0]))
    # the watch on the renamed directory keeps working: its inode moved with the name
    assert lines == [
        f"CREATE,ISDIR {m}/etc",
        f"CREATE {m}/etc/app.conf", f"MODIFY {m}/etc/app.conf",
        f"CLOSE_WRITE,CLOSE {m}/etc/app.conf",
        f"MOVED_FROM,ISDIR {m}/etc", f"MOVED_TO,ISDIR {m}/conf",
        f"MODIFY {m}/conf/app.conf", f"CLOSE_WRITE,CLOSE {m}/conf/app.conf",
        f"DELETE {m}/conf/app.conf",
    ]


def test_mv_of_a_large_directory_is_one_rename_everywhere(cluster, inotify, raftfs_bin):
    # 3,000 files (far more than fit one request as separate keys) under two levels: `mv` renames
    # the directory with one rename(2), in one revision that every member applies; each other
    # member's watcher of the root sees one MOVED_FROM/MOVED_TO pair, and `raftfs watch` shows
    # every moved key at that one revision
    n1, n2, n3 = cluster(3)
    src = os.path.join(n1.mountpoint, "tree")
    os.makedirs(os.path.join(src, "sub"))
    names = [f"{'sub/' if i % 3 == 0 else ''}f{i:04d}" for i in range(3000)]
    for i, name in enumerate(names):
        write(os.path.join(src, name), f"file {i} " + "x" * (i % 37))
    last = os.path.join(n3.mountpoint, "tree", names[-1])
    assert wait_for(lambda: os.path.exists(last), 10.0)
    watchers = []
    for m in (n2, n3):
        w = inotify()
        w.watch(m.mountpoint, "/")
        watchers.append(w)
    log = open(os.path.join(n1.mountpoint, ".raftfs/status")).read()
    rev = json.loads(log)["revision"]
    watch = subprocess.Popen([raftfs_bin, "watch", n2.mountpoint, "/", "--prefix", "--rev",
                              str(rev + 1), "-w", "json"], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        r = subprocess.run(["strace", "-f", "-e", "trace=rename,renameat,renameat2", "mv", src,
                            os.path.join(n1.mountpoint, "moved")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stderr.count("rename") == 1 and "= 0" in r.stderr, r.stderr  # no copy fallback
        for m in (n1, n2, n3):
            moved = os.path.join(m.mountpoint, "moved")
            assert wait_for(lambda: os.path.exists(os.path.join(moved, names[-1])), 5.0), m.name
            assert not os.path.exists(os.path.join(m.mountpoint, "tree"))
            assert sorted(os.listdir(os.path.join(moved, "sub"))) == \
                sorted(n[4:] for n in names if n.startswith("sub/"))
            for i in (0, 1, 1234, 2999):
                assert read(os.path.join(moved, names[i])) == f"file {i} " + "x" * (i % 37)
        for w in watchers:
            assert w.wait_for(("/", "moved", "MOVED_TO|ISDIR"))
            assert w.take() == [("/", "tree", "MOVED_FROM|ISDIR", 1),
                                ("/", "moved", "MOVED_TO|ISDIR", 1)]
        # the watch stream: every key of the tree deleted and put again, all at one revision
        events, revs = [], set()
        deadline = time.monotonic() + 10
        while len(events) < 2 * (len(names) + 2) and time.monotonic() < deadline:
            line = watch.stdout.readline()
            if not line:
                break
            e = json.loads(line)
            events.append(e)
        moved_revs = {e["revision"] for e in events if e["key"].startswith(("/moved", "/tree"))}
        assert len(moved_revs) == 1, moved_revs
        puts = {e["key"] for e in events if e["type"] == "PUT" and e["key"].startswith("/moved/")}
        assert len(puts) == len(names) + 1  # the files and sub/
        # rm -r of the tree still works, file by file, and every member follows
        r = subprocess.run(["rm", "-r", os.path.join(n1.mountpoint, "moved")],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        for m in (n1, n2, n3):
            assert wait_for(lambda: not os.path.exists(os.path.join(m.mountpoint, "moved")),
                            10.0), m.name
    finally:
        os.killpg(watch.pid, signal.SIGTERM)
        watch.wait(timeout=5)


SAVES = [
    # (tool, shell command run in n1's mount that saves f, the content f has after)
    ("bash >", "echo 'bash wrote this' > f", "bash wrote this\n"),
    ("bash >>", "echo 'and appended' >> f", "BASE" + "and appended\n"),
    ("vim", "vim -u NONE -i NONE -es -c 'normal! Govim added' -c wq f", "BASE" + "vim added\n"),
    ("vim backupcopy=yes", "vim -u NONE -i NONE -es -c 'set backupcopy=yes' -c 'normal! Goin place'"
     " -c wq f", "BASE" + "in place\n"),
    ("sed -i", "sed -i 's/^base/sed:/' f", "sed: line of f, version 0\n"),
    ("python open('w')", "python3 -c \"open('f', 'w').write('python\\n' * 3)\"", "python\n" * 3),
    ("cp over", "printf 'copied over, longer than before\\n' > ../src && cp ../src f",
     "copied over, longer than before\n"),
    ("tee", "printf 'through tee\\n' | tee f >/dev/null", "through tee\n"),
    ("install", "printf 'installed\\n' > ../src && install -m 644 ../src f", "installed\n"),
    ("rsync", "printf 'rsynced!\\n' > ../src && rsync ../src f", "rsynced!\n"),
]


@pytest.mark.parametrize("tool,cmd,after", SAVES, ids=[s[0] for s in SAVES])
def test_one_save_makes_one_revision(cluster, inotify, raftfs_bin, tmp_path, tool, cmd, after):
    # every save by an ordinary tool makes exactly one new revision of f, holding what it saved,
    # and a watcher on another member sees one IN_CLOSE_WRITE or IN_MOVED_TO for it
    base = "base line of f, version 0\n"
    after = after.replace("BASE", base)
    n1, n2 = cluster(2)
    f1, f2 = os.path.join(n1.mountpoint, "f"), os.path.join(n2.mountpoint, "f")
    w = inotify()
    w.watch(n2.mountpoint, "/")
    write(f1, base)
    assert w.wait_for(("/", "f", "CLOSE_WRITE"))  # its replay done
    assert read(f2) == base
    w.take()
    rev = int(os.getxattr(n1.mountpoint, "user.raftfs.revision"))
    watch = subprocess.Popen([raftfs_bin, "watch", n2.mountpoint, "/f", "--rev", str(rev + 1),
                              "-w", "json"], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        os.makedirs(tmp_path / "work", exist_ok=True)
        r = subprocess.run(["bash", "-c", cmd], cwd=n1.mountpoint, capture_output=True,
                           text=True, timeout=60, env=dict(os.environ, HOME=str(tmp_path)))
        assert r.returncode == 0, r
        assert read(f1) == after
        assert wait_for(lambda: read(f2) == after, 2.0), read(f2)
        time.sleep(0.3)  # a second revision would follow by now
        w.poll(0.3)
        events = [e for e in w.take() if e[1] == "f"]
        done = [e for e in events if e[2] in ("CLOSE_WRITE", "MOVED_TO")]
        assert len(done) == 1, events
        # the watch stream of /f: one put, with the saved content
        os.killpg(watch.pid, signal.SIGTERM)
        out = watch.communicate(timeout=5)[0]
        sizes = [json.loads(line)["size"] for line in out.splitlines() if '"PUT"' in line]
        if tool == "install":
            # install unlinks f, creates it with O_EXCL (mode 0600), copies, closes, then
            # chmods: the exclusive create is a compare-and-create on every member at once
            # (that is what O_EXCL promises, lock files rely on it), the chmod after close a
            # change of its own; the content still comes in one revision
            assert sizes == [0, len(after.encode()), len(after.encode())], out
        else:
            assert sizes == [len(after.encode())], out
    finally:
        if watch.poll() is None:
            os.killpg(watch.pid, signal.SIGTERM)
            watch.wait(timeout=5)


def test_every_file_type_replicates_and_works_on_each_member(cluster, inotify):
    # mkfifo, mknod (char and block: the mount is nodev, so they are names only) and bind(2) of a
    # UNIX socket make their files on every member, with type, mode and device number; each
    # goes through chmod, chown, utimensat, rename and unlink like any file; a fifo works on
    # each member as the kernel makes it work locally; other members' watchers see each change
    n1, n2 = cluster(2)
    w = inotify()
    w.watch(n2.mountpoint, "/")
    a, b = n1.mountpoint, n2.mountpoint
    os.mkfifo(os.path.join(a, "fifo"), 0o640)
    os.mknod(os.path.join(a, "chr"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(os.path.join(a, "blk"), 0o660 | stat.S_IFBLK, os.makedev(8, 17))
    with socket.socket(socket.AF_UNIX) as sk:
        sk.bind(os.path.join(a, "sock"))
    kinds = {"fifo": stat.S_ISFIFO, "chr": stat.S_ISCHR, "blk": stat.S_ISBLK,
             "sock": stat.S_ISSOCK}
    for name, is_kind in kinds.items():
        p = os.path.join(b, name)
        assert wait_for(lambda: os.path.lexists(p), 2.0), name
        st = os.lstat(p)
        assert is_kind(st.st_mode) and st.st_size == 0, (name, oct(st.st_mode))
    assert os.lstat(os.path.join(b, "chr")).st_rdev == os.makedev(1, 3)
    assert os.lstat(os.path.join(b, "blk")).st_rdev == os.makedev(8, 17)
    assert stat.S_IMODE(os.lstat(os.path.join(b, "fifo")).st_mode) == 0o640
    with open("/proc/mounts") as f:
        options = [line.split()[3] for line in f if line.split()[1] == b]
    assert options and "nodev" in options[0].split(","), options
    with pytest.raises(PermissionError):
        open(os.path.join(b, "chr"), "rb")  # nodev: never the device itself
    # the fifo on n2, as a local fifo: a writer and a reader there meet
    got = []
    reader = threading.Thread(target=lambda: got.append(open(os.path.join(b, "fifo")).read()))
    reader.start()
    with open(os.path.join(b, "fifo"), "w") as f:
        f.write("through the fifo on n2\n")
    reader.join(5)
    assert got == ["through the fifo on n2\n"]
    for name in kinds:  # chmod, chown, utimensat, rename and unlink, each seen on n2
        src, dst = os.path.join(a, name), os.path.join(a, name + ".2")
        os.chmod(src, 0o604)
        os.chown(src, 1234, 5678)
        os.utime(src, ns=(1_000_000_000, 2_000_000_000))
        os.rename(src, dst)
        p = os.path.join(b, name + ".2")
        assert wait_for(lambda: os.path.lexists(p), 2.0), name
        st = os.lstat(p)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns) == \
            (0o604, 1234, 5678, 2_000_000_000), name
        assert kinds[name](st.st_mode)
        os.unlink(dst)
        assert wait_for(lambda: not os.path.lexists(p), 2.0), name
    assert w.wait_for(("/", "sock.2", "DELETE"))
    seen = w.take()
    for name in kinds:
        for kind in ("CREATE", "ATTRIB"):
            assert any(e[1] == name and e[2] == kind for e in seen), (name, kind, seen)
        assert any(e[1] == name + ".2" and e[2] == "MOVED_TO" for e in seen), (name, seen)
        assert any(e[1] == name + ".2" and e[2] == "DELETE" for e in seen), (name, seen)


def test_entr_reruns_a_command_on_a_remote_change(cluster, tmp_path):
    if not shutil.which("entr"):
        pytest.fail("entr is not installed")
    n1, n2 = cluster(2)
    a, b = (os.path.join(m.mountpoint, "app.conf") for m in (n1, n2))
    write(a, "v1\n")
    assert wait_for(lambda: read(b) == "v1\n", 1.0)
    log = tmp_path / "runs"
    proc = subprocess.Popen(["entr", "-n", "-p", "sh", "-c", f"cat {b} >> {log}"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        proc.stdin.write(f"{b}\n".encode())
        proc.stdin.close()
        time.sleep(0.5)  # entr has read its list and watches the file
        assert not log.exists()  # -p: nothing runs before a change
        for i in (2, 3):
            write(a, f"v{i}\n")
            assert wait_for(lambda: log.exists() and log.read_text().endswith(f"v{i}\n"), 3.0), \
                (log.read_text() if log.exists() else "no run")
            time.sleep(0.3)
        assert log.read_text() == "v2\nv3\n"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)


def test_a_burst_of_remote_creates_arrives_in_order(cluster, inotify):
    n1, n2 = cluster(2)
    w = inotify()
    w.watch(n2.mountpoint, "/")
    names = [f"b{i:03d}" for i in range(200)]
    for nm in names:
        os.mkdir(os.path.join(n1.mountpoint, nm))
    assert w.wait_for(("/", names[-1], "CREATE|ISDIR"), 20.0)
    assert w.take() == [("/", nm, "CREATE|ISDIR", 0) for nm in names]
    assert sorted(os.listdir(n2.mountpoint)) == names
    assert "inotify replay" not in n2.stderr()


def test_unmount_and_sigterm_while_replaying_end_cleanly(cluster, inotify):
    n1, n2, n3 = cluster(3)
    # the member stopped first is a follower: n1's writes go on without an election
    leader = os.getxattr(n1.mountpoint, "user.raftfs.leader")
    n2_leads = os.getxattr(n2.mountpoint, "user.raftfs.member") == leader
    first, second = (n3, n2) if n2_leads else (n2, n3)
    w = inotify()
    w.watch(first.mountpoint, "/")
    made, errors = [], []

    def burst(k):
        for i in range(60):
            try:
                os.mkdir(os.path.join(n1.mountpoint, f"t{k}.{i}"))
            except OSError as e:
                # EIO: a proposal that died with the member's stop (it may still commit)
                if e.errno != errno.EIO:
                    errors.append(e)
            made.append(1)
    threads = [threading.Thread(target=burst, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    # SIGTERM in the middle of the burst, with replays queued and running
    assert wait_for(lambda: len(made) >= 40, 10.0)
    started = time.monotonic()
    first._signal(signal.SIGTERM)
    assert first._wait_exit(15.0)
    assert time.monotonic() - started < 12
    assert first.proc.returncode == 0
    for t in threads:
        t.join()
    assert not errors
    # the other is unmounted from outside right after the burst, while it replays its tail
    started = time.monotonic()
    subprocess.run(["fusermount3", "-u", "-z", second.mountpoint], check=True, timeout=10)
    assert second._wait_exit(15.0)
    assert time.monotonic() - started < 12
    assert second.proc.returncode == 0
    assert os.listdir(second.mountpoint) == []  # nothing replayed into the directory underneath
    w.poll(0.1)
    got = [e[1] for e in w.take()]
    assert 0 < len(got) < 240  # the first stopped with replays still to do...
    assert len(got) == len(set(got))  # ...and raised what it replayed once each


def test_replays_racing_local_changes_to_the_same_paths(cluster, inotify):
    n1, n2 = cluster(2)
    w = inotify()
    w.watch(n2.mountpoint, "/")
    errors = []

    def churn(m, tag):
        p, d = os.path.join(m.mountpoint, "same"), os.path.join(m.mountpoint, "dir")
        for i in range(30):
            try:
                write(p, f"{tag}{i}\n")
                os.mkdir(d)
                os.rmdir(d)
            except OSError as e:
                # the other member's change won the race: an ordinary outcome
                if e.errno not in (errno.EEXIST, errno.ENOENT, errno.ENOTEMPTY, errno.EBUSY):
                    errors.append(e)
    threads = [threading.Thread(target=churn, args=(m, t)) for m, t in ((n1, "a"), (n2, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    write(os.path.join(n1.mountpoint, "same"), "last\n")
    assert w.wait_for(("/", "same", "MODIFY"), 5.0)
    # both members, and n2's kernel caches, agree on the end state
    assert wait_for(lambda: read(os.path.join(n2.mountpoint, "same")) == "last\n", 1.0)
    assert os.path.exists(os.path.join(n1.mountpoint, "dir")) == \
        os.path.exists(os.path.join(n2.mountpoint, "dir"))
    assert sorted(os.listdir(n1.mountpoint)) == sorted(os.listdir(n2.mountpoint))


def _replay_waits_on_the_mount(daemon):
    """Whether the daemon's replay thread is blocked in a request to its own mount."""
    for task in glob.glob(f"/proc/{daemon.proc.pid}/task/*"):
        try:
            with open(f"{task}/comm") as f:
                comm = f.read().strip()
            with open(f"{task}/wchan") as f:
                wchan = f.read().strip()
        except OSError:
            continue
        if comm == "raftfs-replay" and wchan == "request_wait_answer":
            return True
    return False


def test_sigkill_while_the_replay_waits_on_the_mount_ends_the_daemon(cluster, monkeypatch):
    # The replay thread's request to its own mount is read and never answered (a test hook), as
    # when SIGKILL lands while the loop serves it: the kernel waits the request out, the waiting
    # thread keeps /dev/fuse open, so only the mount's guard, aborting the connection once the
    # loop's thread is gone, lets the daemon die.
    monkeypatch.setenv("RAFTFS_TEST_REPLAY_HOLD", "1")
    n1, n2 = cluster(2)
    write(os.path.join(n1.mountpoint, "f"), "one\n")
    assert wait_for(lambda: _replay_waits_on_the_mount(n2), 5.0)
    started = time.monotonic()
    os.killpg(n2.proc.pid, signal.SIGKILL)
    n2.proc.wait(timeout=15)  # without the guard: never (the daemon stays a zombie)
    assert time.monotonic() - started < 10
    # the connection was aborted: the mount answers ENOTCONN instead of hanging
    with pytest.raises(OSError) as e:
        os.stat(os.path.join(n2.mountpoint, "f"))
    assert e.value.errno == errno.ENOTCONN


def test_raftfs_umount_while_the_replay_waits_on_the_mount(cluster, monkeypatch, raftfs_bin):
    # The replay thread sits inside the mount (a test hook leaves its create unanswered), as it
    # does for a moment with every change it replays. It works through a detached clone of the
    # mount, so what it holds does not pin the mount users see: `raftfs umount` is not refused
    # (EBUSY), the daemon learns of the unmount from the mount table, lets go of the clone and
    # stops, and nothing is replayed into the directory underneath.
    monkeypatch.setenv("RAFTFS_TEST_REPLAY_HOLD", "1")
    n1, n2 = cluster(2)
    # in a directory of its own: the held create holds that directory's lock, not the root's
    os.mkdir(os.path.join(n1.mountpoint, "d"))
    write(os.path.join(n1.mountpoint, "d", "f"), "one\n")
    assert wait_for(lambda: _replay_waits_on_the_mount(n2), 5.0)
    # the status counts what waits: the held create and (at least) the two files behind it
    write(os.path.join(n1.mountpoint, "d", "g"), "two\n")
    write(os.path.join(n1.mountpoint, "d", "h"), "three\n")
    status = os.path.join(n2.mountpoint, ".raftfs/status")
    assert wait_for(lambda: json.loads(read(status))["replay_backlog"] >= 3, 5.0), read(status)
    r = subprocess.run([raftfs_bin, "umount", n2.mountpoint], capture_output=True, text=True,
                       timeout=30)
    assert (r.returncode, r.stderr) == (0, "")
    assert n2._wait_exit(20.0)
    assert n2.proc.returncode == 0
    log = n2.stderr()
    assert "unmounted from outside" in log and "failed to unmount" not in log
    assert os.listdir(n2.mountpoint) == []


def test_a_lagging_replay_never_follows_a_symlink_out_of_the_mount(cluster, inotify, monkeypatch,
                                                                  tmp_path):
    # The replays run late (a test hook delays each). Meanwhile the directory a replayed create
    # goes into became a symlink to a directory outside the mount, and this member's kernel holds
    # that symlink from a lookup. The replay, a root thread, must not follow it out of the mount.
    # (Walking the path as it did before openat2, the replay created g outside, then unlinked it.)
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.setenv("RAFTFS_TEST_REPLAY_DELAY_MS", "500")
    n1, n2 = cluster(2)
    w = inotify()
    w.watch(n2.mountpoint, "/")
    spy = inotify()  # a create there undone by the later unlink's replay still shows here
    spy.watch(str(outside), "outside")
    a1, a2 = (os.path.join(m.mountpoint, "a") for m in (n1, n2))
    os.mkdir(a1)
    write(os.path.join(a1, "g"), "x\n")
    os.unlink(os.path.join(a1, "g"))
    os.rmdir(a1)
    os.symlink(str(outside), a1)
    # once the mkdir is replayed, lookups on n2 keep the symlink in the kernel's cache while the
    # create of a/g is replayed (500 ms later)
    assert w.wait_for(("/", "a", "CREATE|ISDIR"), 5.0)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # through the create's replay: the kernel keeps it
        assert os.readlink(a2) == str(outside)
        time.sleep(0.01)
    status = os.path.join(n2.mountpoint, ".raftfs/status")
    assert wait_for(lambda: json.loads(read(status))["replay_backlog"] == 0, 10.0)
    spy.poll(0.1)
    assert spy.take() == []
    assert os.listdir(outside) == []
    assert os.readlink(a2) == str(outside)
    # the replays that would have gone through the symlink failed instead, and said so
    log = n2.stderr()
    for what in ("create /a/g", "unlink /a/g"):
        assert f"inotify replay of {what} at revision" in log
    assert "Too many levels of symbolic links" in log


def watched_pair(cluster, inotify, extra=()):
    """Two members, a watcher of n2's root, and the file f written on n1 ("one\n"), which n2
    has read and its kernel caches: n1, n2, the watcher, f on n1, f on n2."""
    n1, n2 = cluster(2, extra=extra)
    w = inotify()
    w.watch(n2.mountpoint, "/")
    a, b = (os.path.join(m.mountpoint, "f") for m in (n1, n2))
    write(a, "one\n")
    assert wait_for(lambda: read(b) == "one\n", 1.0)
    os.stat(b)  # n2's kernel caches it now
    return n1, n2, w, a, b


def test_a_full_replay_queue_drops_events_not_changes(cluster, inotify, monkeypatch):
    # a queue with room for nothing: every remote change overflows it
    monkeypatch.setenv("RAFTFS_REPLAY_QUEUE_MAX", "0")
    n1, n2, w, a, b = watched_pair(cluster, inotify)
    for i in range(5):
        write(a, f"v{i}\n")
        # the caches are still invalidated: n2 reads each new content at once
        assert wait_for(lambda: read(b) == f"v{i}\n", 0.1), read(b)
    os.rename(a, a + "2")
    assert wait_for(lambda: os.listdir(n2.mountpoint) == ["f2"], 0.5)
    w.poll(0.3)
    assert w.take() == []  # n2's own reads raise none of the watched events
    # said once, not once per change
    assert n2.stderr().count("inotify replay: queue full") == 1


def test_no_remote_inotify_raises_local_events_only(cluster, inotify, raftfs_bin):
    # -o no_remote_inotify: no replay thread; other members' changes raise nothing here, and the
    # kernel's caches are still kept right
    n1, n2, w, a, b = watched_pair(cluster, inotify, ("-o", "no_remote_inotify"))
    write(a, "two\n")
    assert wait_for(lambda: read(b) == "two\n", 0.1), read(b)
    os.mkdir(os.path.join(n1.mountpoint, "d"))
    assert wait_for(lambda: sorted(os.listdir(n2.mountpoint)) == ["d", "f"], 0.5)
    os.rename(a, a + "2")  # a deletion of a name n2's kernel holds, and a new one
    assert wait_for(lambda: sorted(os.listdir(n2.mountpoint)) == ["d", "f2"], 0.5)
    assert read(b) is None and read(b + "2") == "two\n"
    os.unlink(a + "2")
    assert wait_for(lambda: read(b + "2") is None, 0.5)
    w.poll(0.3)
    assert w.take() == []  # neither n1's changes nor n2's reads raised a watched event
    write(b, "three\n")  # n2's own change: its kernel raises its events, once each
    assert w.wait_for(("/", "f", "CLOSE_WRITE"))
    assert w.take() == [("/", "f", "CREATE", 0), ("/", "f", "MODIFY", 0),
                        ("/", "f", "CLOSE_WRITE", 0)]
    assert wait_for(lambda: read(a) == "three\n", 1.0)
    doc = json.loads(subprocess.run([raftfs_bin, "status", n2.mountpoint, "-w", "json"],
                                    capture_output=True, text=True, check=True).stdout)
    assert doc["remote_inotify"] is False and doc["replay_backlog"] == 0
    table = subprocess.run([raftfs_bin, "status", n2.mountpoint], capture_output=True, text=True,
                           check=True).stdout
    assert "\ninotify replay   off (-o no_remote_inotify)\n" in table
    assert "raise no inotify events here (-o no_remote_inotify)" in n2.stderr()


def test_a_lease_revoke_raises_delete_on_every_member(cluster, inotify, raftfs_bin):
    # the revoke is no FUSE request of any mount: every member replays its delete, n1 included
    n1, n2 = cluster(2)
    w1, w2 = inotify(), inotify()
    w1.watch(n1.mountpoint, "/")
    w2.watch(n2.mountpoint, "/")
    out = subprocess.run([raftfs_bin, "lease", "grant", n1.mountpoint, "60", "-w", "json"],
                         capture_output=True, text=True, timeout=10, check=True)
    lease = str(json.loads(out.stdout)["id"])
    for name in ("a", "b"):
        write(os.path.join(n1.mountpoint, name), "x\n")
        os.setxattr(os.path.join(n1.mountpoint, name), "user.raftfs.lease", lease.encode())
    assert w2.wait_for(("/", "b", "CLOSE_WRITE"))
    w1.poll(0.2)
    w1.take()
    w2.take()
    subprocess.run([raftfs_bin, "lease", "revoke", n2.mountpoint, lease], capture_output=True,
                   timeout=10, check=True)
    for w in (w1, w2):
        assert w.wait_for(("/", "b", "DELETE"))
        assert w.take() == [("/", "a", "DELETE", 0), ("/", "b", "DELETE", 0)]
    assert os.listdir(n1.mountpoint) == [] and os.listdir(n2.mountpoint) == []


def test_a_burst_of_new_files_each_raise_create_modify_close_write(cluster, inotify):
    # many writers at once make a backlog on n2, where a commit may wait behind its create
    n1, n2 = cluster(2)
    w = inotify()
    w.watch(n2.mountpoint, "/")

    def writer(k):
        for i in range(25):
            write(os.path.join(n1.mountpoint, f"w{k}.{i}"), f"{k} {i}\n")
    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = {f"w{k}.{i}" for k in range(8) for i in range(25)}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and \
            len({e[1] for e in w.events if e[2] == "CLOSE_WRITE"}) < len(names):
        w.poll(0.1)
    end = time.monotonic() + 0.3  # and a moment more, for duplicates
    while time.monotonic() < end:
        w.poll(0.05)
    events = w.take()
    for nm in sorted(names):
        mine = [e for e in events if e[1] == nm]
        assert merged(mine) == [("/", nm, "CREATE", 0), ("/", nm, "MODIFY", 0),
                                ("/", nm, "CLOSE_WRITE", 0)], mine
    assert {e[1] for e in events} == names
    assert "inotify replay" not in n2.stderr()
    assert read(os.path.join(n2.mountpoint, "w7.24")) == "7 24\n"
