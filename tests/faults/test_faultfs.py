#!/usr/bin/python3
"""test_faultfs.py: faultfs (faultfs.c) by itself, as the fault suite's member disks use it.

Writes through a faultfs mount, syncs some of it, powers the layer off, unmounts, and checks that
the backing directory and a fresh mount over it hold exactly what was synced: fsynced and
fdatasynced data, names made (directory operations are applied at once), and nothing written
after the last sync of a file; with --strict-dirs, only the changes of names whose directories
were fsynced. Also: reads see unsynced data (including a private mapping),
truncates and preallocation, a seeded random mix of writes, truncates and syncs against a model,
the fsync-eio and enospc commands, and EIO for everything after power-off.

Run as root with /dev/fuse; exits 77 (skipped) otherwise. RAFTFS_FAULTFS_BIN names the binary
(default: build/tests/faults/faultfs).
"""

import errno
import mmap
import os
import random
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

import harness  # noqa: E402  (tests/e2e/harness.py: Daemon start/stop escalation)
BIN = os.environ.get("RAFTFS_FAULTFS_BIN",
                     os.path.join(HERE, "..", "..", "build", "tests", "faults", "faultfs"))
SKIP = 77


class Layer:
    """One faultfs mount of backing at mnt (a harness.Daemon: stop() always unmounts)."""

    def __init__(self, backing, mnt, strict=False):
        self.mnt = mnt
        argv = [BIN, *(["--strict-dirs"] if strict else []), backing, mnt]
        self.daemon = harness.Daemon("faultfs", argv, mnt, os.path.dirname(mnt))
        self.daemon.start()
        try:
            self.daemon.wait_mounted(10)
        except harness.HarnessError:
            self.daemon.stop()
            raise

    def ctl(self, cmd):
        with open(os.path.join(self.mnt, ".faultfs"), "w") as f:
            f.write(cmd + "\n")

    def state(self):
        with open(os.path.join(self.mnt, ".faultfs")) as f:
            return f.read()

    def unmount(self):
        self.daemon.stop()


FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print(f"FAIL: {what}", flush=True)


def write_at(path, data, off, sync=None, flags=os.O_RDWR | os.O_CREAT):
    fd = os.open(path, flags, 0o644)
    try:
        os.pwrite(fd, data, off)
        if sync == "fsync":
            os.fsync(fd)
        elif sync == "fdatasync":
            os.fdatasync(fd)
    finally:
        os.close(fd)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def expect_errno(err, fn, what):
    try:
        fn()
    except OSError as e:
        check(e.errno == err, f"{what}: {errno.errorcode.get(e.errno)} instead of "
              f"{errno.errorcode[err]}")
        return
    check(False, f"{what}: succeeded, {errno.errorcode[err]} expected")


def random_model(mnt, rng, name, rounds=300):
    """A random mix of writes, truncates and syncs on one file; returns (content now, content at
    the last sync). Reads through the mount are compared with the model as it goes."""
    path = os.path.join(mnt, name)
    now = bytearray()
    synced = bytes()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    os.fsync(fd)
    try:
        for i in range(rounds):
            x = rng.random()
            if x < 0.6:
                off = rng.randrange(0, len(now) + 5000)
                data = bytes([rng.randrange(1, 256)]) * rng.randrange(1, 3000)
                os.pwrite(fd, data, off)
                if off > len(now):
                    now.extend(b"\0" * (off - len(now)))
                now[off:off + len(data)] = data
            elif x < 0.75:
                size = rng.randrange(0, len(now) + 4000)
                os.ftruncate(fd, size)
                if size < len(now):
                    del now[size:]
                else:
                    now.extend(b"\0" * (size - len(now)))
            elif x < 0.85:
                (os.fsync if rng.random() < 0.5 else os.fdatasync)(fd)
                synced = bytes(now)
            else:
                off = rng.randrange(0, len(now) + 10)
                got = os.pread(fd, rng.randrange(1, 9000), off)
                want = bytes(now[off:off + len(got)])
                if got != want or (len(got) == 0 and off < len(now)):
                    check(False, f"{name} round {i}: read at {off} differs from the model")
                    break
        check(read(path) == bytes(now), f"{name}: whole read differs from the model")
    finally:
        os.close(fd)
    return bytes(now), synced


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def strict_dirs(root):
    """--strict-dirs: a change of a name survives a power-off only once its directory was fsynced
    (both directories for a rename); the others are undone, the files they removed come back."""
    backing, mnt = os.path.join(root, "strict-backing"), os.path.join(root, "strict-mnt")
    os.makedirs(backing)
    os.makedirs(mnt)
    layer = Layer(backing, mnt, strict=True)
    try:
        m = lambda *p: os.path.join(mnt, *p)  # noqa: E731
        b = lambda *p: os.path.join(backing, *p)  # noqa: E731
        write_at(m("kept"), b"kept", 0, sync="fsync")
        write_at(m("old"), b"old", 0, sync="fsync")
        write_at(m("new"), b"new", 0, sync="fsync")
        write_at(m("moved"), b"moved", 0, sync="fsync")
        write_at(m("gone"), b"gone", 0, sync="fsync")
        os.mkdir(m("e"))
        fsync_dir(mnt)
        # after the root's fsync: none of these changes of its names is durable
        os.mkdir(m("d"))
        write_at(m("d", "f"), b"f", 0, sync="fsync")
        fsync_dir(m("d"))  # d/f is durable in d, but d itself is not in the root
        write_at(m("e", "g"), b"g", 0, sync="fsync")  # e is durable; g in it once e is fsynced
        os.rename(m("moved"), m("moved2"))
        os.unlink(m("kept"))
        os.rename(m("new"), m("old"))  # replaces old
        os.rename(m("gone"), m("e", "gone"))
        fsync_dir(m("e"))  # g is durable now; a rename between two directories needs both
        check(".faultfs-stash" not in os.listdir(mnt), "strict: the stash is listed")
        check(sorted(os.listdir(mnt)) == ["d", "e", "moved2", "old"],
              f"strict: names before power-off {sorted(os.listdir(mnt))}")
        check("names 5 changes not durable" in layer.state(), "strict: " + layer.state())
        layer.ctl("power-off")
        layer.unmount()
        names = sorted(os.listdir(backing))
        check(names == ["e", "gone", "kept", "moved", "new", "old"],
              f"strict: names after power-off {names}")
        check(os.listdir(b("e")) == ["g"], f"strict: e holds {os.listdir(b('e'))}")
        for name, data in (("kept", b"kept"), ("old", b"old"), ("new", b"new"),
                           ("moved", b"moved"), ("gone", b"gone")):
            check(read(b(name)) == data, f"strict: {name} holds {read(b(name))!r}")
        # made durable by the fsyncs that were missing, they survive
        layer = Layer(backing, mnt, strict=True)
        os.rename(m("new"), m("old"))
        os.mkdir(m("e", "sub"))
        fsync_dir(mnt)
        fsync_dir(m("e"))
        layer.ctl("power-off")
        layer.unmount()
        check(sorted(os.listdir(backing)) == ["e", "gone", "kept", "moved", "old"] and
              read(b("old")) == b"new" and sorted(os.listdir(b("e"))) == ["g", "sub"],
              f"strict: after synced changes {sorted(os.listdir(backing))}")
    finally:
        layer.unmount()
    check(".faultfs-stash" not in os.listdir(backing), "strict: the stash stays after unmount")


def main():
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        print("test_faultfs: skipped (needs root and /dev/fuse)")
        return SKIP
    if not os.path.exists(BIN):
        print(f"test_faultfs: no faultfs binary at {BIN} (set RAFTFS_FAULTFS_BIN)")
        return 1
    root = tempfile.mkdtemp(prefix="faultfs-test")
    backing, mnt = os.path.join(root, "backing"), os.path.join(root, "mnt")
    os.makedirs(backing)
    os.makedirs(mnt)
    layer = None
    try:
        layer = Layer(backing, mnt)
        m = lambda *p: os.path.join(mnt, *p)  # noqa: E731
        b = lambda *p: os.path.join(backing, *p)  # noqa: E731

        # a: synced, then more written and part of it overwritten, not synced
        write_at(m("a"), b"A" * 5000, 0, sync="fsync")
        write_at(m("a"), b"x" * 100, 4950)
        write_at(m("a"), b"y" * 10, 10)
        want_a_now = b"A" * 10 + b"y" * 10 + b"A" * 4930 + b"x" * 100
        check(read(m("a")) == want_a_now, "a: reads do not see the unsynced writes")
        check(os.stat(m("a")).st_size == 5050, "a: stat does not show the unsynced size")
        check(read(b("a")) == b"A" * 5000, "a: unsynced bytes reached the backing file")
        with open(m("a"), "rb") as f:  # the WAL reads segments through a private mapping
            with mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ) as mm:
                check(mm[:] == want_a_now, "a: a private mapping does not see the writes")

        # b: made and written, never synced: the name stays (made at once), the data goes
        write_at(m("b"), b"never synced", 0)
        # c: fdatasynced, then cut without a sync
        write_at(m("c"), b"C" * 3000, 0, sync="fdatasync")
        os.truncate(m("c"), 100)
        check(read(m("c")) == b"C" * 100, "c: the truncate is not seen")
        # d: cut and grown again: the bytes between read as zeros, then synced
        write_at(m("d"), b"D" * 1000, 0, sync="fsync")
        os.truncate(m("d"), 10)
        os.truncate(m("d"), 500)
        write_at(m("d"), b"e" * 10, 600, sync="fsync")
        want_d = b"D" * 10 + b"\0" * 590 + b"e" * 10
        check(read(m("d")) == want_d, "d: cut-and-grown content is wrong before power-off")
        # e: preallocated (as WAL segments are), the head written and synced, the rest not
        fd = os.open(m("e"), os.O_RDWR | os.O_CREAT, 0o600)
        os.posix_fallocate(fd, 0, 1 << 20)
        os.pwrite(fd, b"head", 0)
        os.fdatasync(fd)
        os.pwrite(fd, b"tail", 4)
        os.close(fd)
        check(os.stat(m("e")).st_size == 1 << 20, "e: fallocate did not set the size")
        # f: written to a temporary name, synced, renamed (as snapshots are), then more unsynced
        write_at(m("f.tmp"), b"snapshot", 0, sync="fsync")
        os.rename(m("f.tmp"), m("f"))
        write_at(m("f"), b"!", 8)
        # a directory made at once, a file in it synced
        os.mkdir(m("sub"))
        write_at(m("sub", "g"), b"in a dir", 0, sync="fsync")
        fd = os.open(m("sub"), os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(fd)
        os.close(fd)
        # an unlinked file with unsynced data, and a renamed-over one
        write_at(m("gone"), b"gone", 0)
        os.unlink(m("gone"))
        check(not os.path.exists(b("gone")), "gone: unlink not applied at once")
        write_at(m("h"), b"old", 0, sync="fsync")
        write_at(m("h.new"), b"new!", 0)
        os.rename(m("h.new"), m("h"))
        check(read(m("h")) == b"new!", "h: a rename over a file shows the old content")
        # random writes, truncates and syncs against a model
        rng = random.Random(21)
        models = {f"r{i}": random_model(mnt, rng, f"r{i}") for i in range(3)}

        # fsync-eio: fsync fails, the data stays unsynced; enospc: growing writes fail
        layer.ctl("fsync-eio")
        fd = os.open(m("i"), os.O_RDWR | os.O_CREAT, 0o600)
        os.pwrite(fd, b"not durable", 0)
        expect_errno(errno.EIO, lambda: os.fsync(fd), "fsync under fsync-eio")
        expect_errno(errno.EIO, lambda: os.fdatasync(fd), "fdatasync under fsync-eio")
        os.close(fd)
        dfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
        expect_errno(errno.EIO, lambda: os.fsync(dfd), "directory fsync under fsync-eio")
        os.close(dfd)
        layer.ctl("heal")
        layer.ctl("fullsync-eio")  # fsync of files and directories only
        fd = os.open(m("i2"), os.O_RDWR | os.O_CREAT, 0o600)
        os.pwrite(fd, b"datasynced", 0)
        os.fdatasync(fd)
        expect_errno(errno.EIO, lambda: os.fsync(fd), "fsync under fullsync-eio")
        os.close(fd)
        dfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
        expect_errno(errno.EIO, lambda: os.fsync(dfd), "directory fsync under fullsync-eio")
        os.close(dfd)
        layer.ctl("heal")
        layer.ctl("enospc")
        fd = os.open(m("e"), os.O_RDWR)
        os.pwrite(fd, b"inside", 100)  # inside the preallocated size: no new space needed
        expect_errno(errno.ENOSPC, lambda: os.pwrite(fd, b"x", 1 << 20), "a growing write")
        expect_errno(errno.ENOSPC, lambda: os.posix_fallocate(fd, 0, 2 << 20),
                     "a growing fallocate")
        os.close(fd)
        layer.ctl("heal")
        check("fsync ok" in layer.state() and "space ok" in layer.state(), "heal: " +
              layer.state())
        expect_errno(errno.EINVAL, lambda: layer.ctl("melt"), "an unknown command")

        # power off: every operation fails, the control file still answers
        layer.ctl("power-off")
        check("power off" in layer.state(), "state after power-off: " + layer.state())
        expect_errno(errno.EIO, lambda: read(m("a")), "a read after power-off")
        expect_errno(errno.EIO, lambda: os.listdir(mnt), "a listing after power-off")
        expect_errno(errno.EIO, lambda: write_at(m("new"), b"x", 0), "a create after power-off")
        layer.unmount()
        check(not harness.is_mounted(mnt), "faultfs did not unmount")

        def survivors(root_, where):
            check(read(os.path.join(root_, "a")) == b"A" * 5000, f"{where}: a is not its synced "
                  f"content")
            check(read(os.path.join(root_, "b")) == b"", f"{where}: b is not empty")
            check(read(os.path.join(root_, "c")) == b"C" * 3000, f"{where}: c lost synced data")
            check(read(os.path.join(root_, "d")) == want_d, f"{where}: d is not its synced content")
            e = read(os.path.join(root_, "e"))
            check(len(e) == 1 << 20 and e[:8] == b"head\0\0\0\0" and not any(e[8:]),
                  f"{where}: e is not its synced head in 1 MiB of zeros")
            check(read(os.path.join(root_, "f")) == b"snapshot", f"{where}: f is not the "
                  f"renamed synced file")
            check(not os.path.exists(os.path.join(root_, "f.tmp")), f"{where}: f.tmp is back")
            check(read(os.path.join(root_, "sub", "g")) == b"in a dir", f"{where}: sub/g lost")
            check(read(os.path.join(root_, "h")) == b"", f"{where}: h is not the (unsynced, "
                  f"so empty) file renamed over it")
            check(read(os.path.join(root_, "i")) == b"", f"{where}: i has data whose fsync failed")
            check(read(os.path.join(root_, "i2")) == b"datasynced", f"{where}: i2 lost data "
                  f"fdatasynced under fullsync-eio")
            for name, (now, synced) in models.items():
                got = read(os.path.join(root_, name))
                check(got == synced, f"{where}: {name} holds {len(got)} bytes, its last sync "
                      f"{len(synced)} (now {len(now)})")
            names = sorted(os.listdir(root_))
            check(names == ["a", "b", "c", "d", "e", "f", "h", "i", "i2", "r0", "r1", "r2", "sub"],
                  f"{where}: names {names}")

        survivors(backing, "backing after power-off")
        layer = Layer(backing, mnt)
        survivors(mnt, "fresh mount")
        check("power on" in layer.state() and "unsynced 0 bytes" in layer.state(),
              "fresh mount state: " + layer.state())
        strict_dirs(root)
    except Exception as e:  # noqa: BLE001 - reported as a failure, the mount removed
        check(False, f"{e!r}")
    finally:
        if layer is not None:
            layer.unmount()
            bad = [ln for ln in layer.daemon.stderr().splitlines()
                   if any(p.search(ln) for p in harness.SANITIZER_PATTERNS)]
            check(not bad, f"sanitizer reports in faultfs's log: {bad[:3]}")
        if harness.is_mounted(mnt):
            FAILS.append(f"{mnt} is still mounted")
        elif not FAILS:
            shutil.rmtree(root, ignore_errors=True)
    if FAILS:
        print(f"test_faultfs: {len(FAILS)} failed; {root} kept (faultfs's log: faultfs.stderr)")
        return 1
    print("test_faultfs: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
