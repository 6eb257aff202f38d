"""workload.py: clients on every mount at once, recording a history; and watches.

Registers: files reg0..regK-1 at the mounts' root, each read and written whole by every client:
- read: open O_RDONLY, read to the end, close (one op, the value seen);
- in-place write: open O_WRONLY|O_TRUNC (the truncate is an op of its own, 'trunc', from the
  open's call to its return: raftfs may commit the emptied file at the open, as a local file
  system shows it empty until the write), then write the value and close (op 'write' how
  'inplace', from the open's call to close's return: the value goes to the file the open found,
  and is dropped with it if a rename replaces that file meanwhile, as on a local file system);
- write-temp-then-rename: the value written to a temporary name and closed, then rename() over
  the file (op 'write' how 'rename', the rename's call to its return);
- write-temp-then-exchange: the value written to a temporary name and closed, then
  renameat2(RENAME_EXCHANGE) of it with the file (op 'write' how 'swap'): the file gets the new
  value, the temporary name the old one, in one revision; then the temporary name is removed.
  (Exchanging two registers would bring old values back, and every check relies on each value
  being written once);
- compare-and-create: open O_CREAT|O_EXCL of cas<slot>, or mkdir dir<slot>, where the slot is the
  current half second, so the clients of all members race for the same names: exactly one may
  win each, the others must get EEXIST.
Every value is unique and of a different length (checker.make_value). A write that fails with any
error is indeterminate ('info'): EIO after the request timeout, ENOTCONN of a killed member. A read
that fails is 'fail' (it changed nothing). Ops still running at the end stay 'info'.

Watches: `raftfs watch MOUNT / --prefix -w json --rev R` on every member, restarted after its
member comes back from the revision after the last it printed; each run is a session checked
against the members' full history (checker.watch_anomalies).
"""

import base64
import binascii
import ctypes
import errno
import json
import os
import random
import select
import shutil
import subprocess
import tempfile
import threading
import time

import checker
from checker import Op

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
RENAME_EXCHANGE = 2

NS = time.monotonic_ns


class History:
    def __init__(self):
        self.ops = []
        self.lock = threading.Lock()
        self.next_id = 0

    def invoke(self, process, member, key, f, value, how=None, tmp=None):
        with self.lock:
            self.next_id += 1
            op = Op(self.next_id, process, member, key, f, value, NS(), None, "info", how=how,
                    tmp=tmp)
            self.ops.append(op)
        return op

    @staticmethod
    def complete(op, status, value=None, error=None):
        op.ret = NS()
        op.status = status
        if value is not None:
            op.value = value
        op.error = error


def errname(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if isinstance(e, OSError) else repr(e)


# the ops a client picks from, with their weights (--ops chooses a subset)
WEIGHTS = {"read": 45, "inplace": 20, "rename": 20, "swap": 5, "create": 8, "mkdir": 7}
DEFAULT_OPS = ("read", "inplace", "rename", "swap", "create", "mkdir")
ALL_OPS = tuple(WEIGHTS) + ("lease",)  # lease: the Lessee of leases.py, not a client op
OPS = {"read": "read", "inplace": "write_inplace", "rename": "write_rename", "swap": "write_swap",
       "create": "create", "mkdir": "mkdir"}


class Client(threading.Thread):
    def __init__(self, wl, cid, member):
        super().__init__(daemon=True, name=f"client{cid}")
        self.wl = wl
        self.cid = cid
        self.member = member
        self.rng = random.Random(wl.seed * 1000 + cid)
        self.seq = 0
        self.ops_done = 0

    def root(self):
        """A descriptor of the mount's root, or None when the member's mount is not there (what
        the op opens is relative to it)."""
        return self.member.root_fd()

    def run(self):
        wl = self.wl
        while not wl.stop.is_set():
            x = self.rng.random()
            key = f"reg{self.rng.randrange(wl.keys)}"
            self.dfd = self.root()
            if self.dfd is None:
                time.sleep(0.1)  # the member is down: its clients wait
                continue
            try:
                for name, upto in wl.mix:
                    if x < upto:
                        getattr(self, OPS[name])(*([key] if name in ("read", "inplace",
                                                                       "rename", "swap")
                                                   else []))
                        break
            except Exception as e:  # noqa: BLE001 - a client bug must not end the run silently
                wl.errors.append(f"client {self.cid}: {e!r}")
            finally:
                try:
                    os.close(self.dfd)
                except OSError:
                    pass
            self.ops_done += 1
            time.sleep(self.rng.uniform(0, wl.pause_s))

    def value(self):
        self.seq += 1
        if self.rng.random() < 0.1:
            n = self.rng.randrange(50_000, 200_000)  # many FUSE reads for one whole-file read
        else:
            n = self.rng.randrange(0, 3000)
        return checker.make_value(self.cid, self.seq, n)

    def read(self, key):
        h = self.wl.history
        op = h.invoke(self.cid, self.member.name, key, "read", None)
        try:
            fd = os.open(key, os.O_RDONLY, dir_fd=self.dfd)
            try:
                chunks = []
                while True:
                    b = os.read(fd, 1 << 16)
                    if not b:
                        break
                    chunks.append(b)
            finally:
                os.close(fd)
            h.complete(op, "ok", checker.canon(b"".join(chunks).decode("latin-1")))
        except OSError as e:
            h.complete(op, "fail", error=errname(e))

    def write_inplace(self, key):
        h = self.wl.history
        v = self.value()
        t = h.invoke(self.cid, self.member.name, key, "trunc", "")
        try:
            fd = os.open(key, os.O_WRONLY | os.O_TRUNC, dir_fd=self.dfd)
        except OSError as e:
            h.complete(t, "info", error=errname(e))
            return
        h.complete(t, "ok")
        op = h.invoke(self.cid, self.member.name, key, "write", checker.canon(v), how="inplace")
        # the write is to the file the open found: it may be replaced (by a rename) from then on,
        # and its content then goes with it, so the op spans from the open to the close
        op.call = t.call
        try:
            data = v.encode("latin-1")
            try:
                off = 0
                while off < len(data):
                    off += os.write(fd, data[off:])
            finally:
                fd, f = -1, fd
                os.close(f)
            h.complete(op, "ok")
        except OSError as e:
            h.complete(op, "info", error=errname(e))

    def temp_write(self, key, how):
        """A new value written to a temporary name, closed; then the op of writing it into key by
        `how` (rename, swap) is invoked and returned with the temporary name, or None when the
        temporary file could not be written (it is not the register: nothing to record)."""
        v = self.value()
        tmp = f".{key}.{'tmp' if how == 'rename' else 'swp'}.{self.cid}.{self.seq}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=self.dfd)
            try:
                os.write(fd, v.encode("latin-1"))
            finally:
                os.close(fd)
        except OSError:
            return None, tmp
        return self.wl.history.invoke(self.cid, self.member.name, key, "write", checker.canon(v),
                                      how=how, tmp="/" + tmp), tmp

    def write_rename(self, key):
        h = self.wl.history
        op, tmp = self.temp_write(key, "rename")
        if op is None:
            return
        try:
            os.rename(tmp, key, src_dir_fd=self.dfd, dst_dir_fd=self.dfd)
            h.complete(op, "ok")
        except OSError as e:
            h.complete(op, "info", error=errname(e))

    def write_swap(self, key):
        h = self.wl.history
        op, tmp = self.temp_write(key, "swap")
        if op is None:
            return
        if LIBC.renameat2(self.dfd, tmp.encode(), self.dfd, key.encode(),
                          RENAME_EXCHANGE) == 0:
            h.complete(op, "ok")
        else:
            e = ctypes.get_errno()
            # EBUSY: a concurrent change of either name won every attempt, nothing was exchanged
            h.complete(op, "fail" if e == errno.EBUSY else "info",
                       error=errno.errorcode.get(e, str(e)))
        try:
            os.unlink(tmp, dir_fd=self.dfd)
        except OSError:
            pass

    def _cas(self, prefix, fn, how):
        h = self.wl.history
        name = f"{prefix}{int(time.monotonic() * 2) % 100000}"
        op = h.invoke(self.cid, self.member.name, name, "create", f"p{self.cid}", how=how)
        try:
            fn(name)
            h.complete(op, "ok")
        except FileExistsError as e:
            h.complete(op, "fail", error=errname(e))
        except OSError as e:
            h.complete(op, "info", error=errname(e))

    def create(self):
        def excl(p):
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=self.dfd))
        self._cas("cas", excl, "excl")

    def mkdir(self):
        self._cas("dir", lambda p: os.mkdir(p, dir_fd=self.dfd), "mkdir")


class Watcher(threading.Thread):
    """`raftfs watch` on one member, restarted whenever it ends while the run goes on."""

    def __init__(self, wl, member, start_rev):
        super().__init__(daemon=True, name=f"watch-{member.name}")
        self.wl = wl
        self.member = member
        self.next_rev = start_rev
        self.sessions = []  # (start revision asked, [events])
        self.cut = set()  # indexes of sessions that ended with their member
        self.ends = []  # (start revision, events, exit status, its stderr's last line) per session
        self.proc = None
        self.done = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        while not self.done.is_set():
            try:
                self._session()
            except Exception as e:  # noqa: BLE001 - said in the anomaly, never a silent end
                self.ends.append((self.next_rev, 0, "exception", repr(e)))
                time.sleep(0.3)

    def _session(self):
        """One `raftfs watch` from next_rev, until it ends (or a wait while its member is down)."""
        if not self.member.alive or self.member.paused:
            time.sleep(0.2)
            return
        events = []
        start = self.next_rev
        with tempfile.TemporaryFile() as err:
            with self.lock:
                if self.done.is_set():
                    return
                self.proc = subprocess.Popen(
                    [self.wl.cluster.binary, "watch", self.member.mountpoint, "/", "--prefix",
                     "--rev", str(start), "-w", "json"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
            self.sessions.append((start, events))
            for line in self.proc.stdout:
                try:
                    e = json.loads(line)
                    events.append(normalize(e))
                except (ValueError, KeyError, TypeError, binascii.Error):
                    # not an event (a line cut by its member's death, an error): shown as such,
                    # never the end of the watcher, which goes on with the next session
                    events.append({"revision": -1, "type": "GARBAGE", "key": line[:80]})
                    continue
                self.next_rev = e["revision"] + 1
            status = self.proc.wait()
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()
        self.ends.append((start, len(events), status, tail[-1] if tail else ""))
        got = [e for e in events if e["revision"] >= 0]
        if not self.done.is_set() and got:
            # it ended with its member: its last revision may have been cut between two
            # events, so the next session starts again at that revision
            self.cut.add(len(self.sessions) - 1)
            self.next_rev = got[-1]["revision"]
        if not self.done.is_set():
            time.sleep(0.3)

    def last_rev(self):
        return self.next_rev - 1

    def stop(self):
        with self.lock:
            self.done.set()
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
        self.join(timeout=10)


class Inotify:
    """`inotifywait -m` on a member's mount root: the kernel's own events for changes made through
    this mount and the replayed ones for changes made on other members. A stream that ends
    before stop() (its member killed: events of the time it was down are never replayed) is
    marked broken and not checked."""

    def __init__(self, member):
        self.member = member
        self.lines = []
        self.proc = None
        self.broken = False
        self.stopping = False
        self.thread = None

    def start(self, timeout=10):
        self.starts = self.member.starts  # a restart since means events were lost meanwhile
        self.log_from = len(self.member.daemon.stderr())
        self.proc = subprocess.Popen(
            ["inotifywait", "-m", "--format", "%e %c %f", self.member.mountpoint],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # "Watches established." on stderr
            line = self.proc.stderr.readline()
            if not line or "established" in line:
                break
        self.thread = threading.Thread(target=self._read, daemon=True,
                                       name=f"inotify-{self.member.name}")
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
        if not self.stopping:
            self.broken = True

    def stop(self):
        self.stopping = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.thread is not None:
            self.thread.join(timeout=10)

    def is_broken(self):
        """Whether the stream missed events: it ended, its mount went away (the watch is then
        gone: IN_UNMOUNT, IN_IGNORED), or its member was restarted."""
        return (self.broken or self.member.starts != self.starts or
                any(e & {"UNMOUNT", "IGNORED", "DELETE_SELF"} for e, _, _ in self.events()))

    def snapshot_restored(self):
        """Whether the member restored a snapshot from the leader since the stream began: a
        snapshot raises no inotify events (README.md, "What local means for inotify")."""
        return "restored the snapshot" in self.member.daemon.stderr()[self.log_from:]

    def events(self):
        """(events, cookie, name) per line; events a set like {'MOVED_TO'}."""
        out = []
        for ln in self.lines:
            parts = ln.split(" ", 2)
            if len(parts) == 3:
                out.append((set(parts[0].split(",")), parts[1], parts[2]))
        return out


def normalize(e):
    v = e.get("value")
    if v is not None:
        v = checker.canon(base64.b64decode(v).decode("latin-1"))
    return {"revision": e["revision"], "type": e["type"], "key": e["key"], "value": v}


def full_history(binary, member, upto, timeout=60):
    """Every change on member from revision 1 to upto, from `raftfs watch --rev 1`."""
    p = subprocess.Popen([binary, "watch", member.mountpoint, "/", "--prefix", "--rev", "1",
                          "-w", "json"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    events = []
    buf = b""
    deadline = time.monotonic() + timeout
    reached = None
    try:
        while time.monotonic() < deadline:
            # after the last revision is reached, half a second of quiet ends it
            wait = 0.5 if reached else max(0.0, deadline - time.monotonic())
            r, _, _ = select.select([p.stdout], [], [], wait)
            if not r:
                if reached:
                    break
                continue
            chunk = os.read(p.stdout.fileno(), 1 << 20)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for ln in lines:
                e = normalize(json.loads(ln))
                events.append(e)
                if e["revision"] >= upto:
                    reached = True
    finally:
        p.kill()
        p.wait()
    if not reached and upto > 1:
        raise RuntimeError(f"watch on {member.name} did not reach revision {upto}")
    return [e for e in events if e["revision"] <= upto]


class Workload:
    def __init__(self, cluster, seed, keys=3, clients_per_member=2, pause_s=0.02, ops=None):
        ops = [o for o in (ops or DEFAULT_OPS) if o in WEIGHTS]
        total = sum(WEIGHTS[o] for o in ops)
        acc = 0.0
        self.mix = []
        for o in ops:
            acc += WEIGHTS[o] / total
            self.mix.append((o, acc))
        if self.mix:
            self.mix[-1] = (self.mix[-1][0], 1.01)
        self.cluster = cluster
        self.seed = seed
        self.keys = keys
        self.pause_s = pause_s
        self.history = History()
        self.stop = threading.Event()
        self.errors = []
        self.inits = {}
        self.clients = []
        cid = 1
        for m in cluster.members if self.mix else []:
            for _ in range(clients_per_member):
                self.clients.append(Client(self, cid, m))
                cid += 1
        self.watchers = []

    def setup(self):
        """Writes each register's initial value (client 0), and starts the watches after it."""
        m = self.cluster.members[0]
        for k in range(self.keys):
            v = checker.make_value(0, k, 10 + k)
            with open(os.path.join(m.mountpoint, f"reg{k}"), "w", encoding="latin-1") as f:
                f.write(v)
            self.inits[f"reg{k}"] = checker.canon(v)
        rev = self.cluster.wait_converged()
        self.start_rev = rev + 1
        self.watchers = [Watcher(self, mm, self.start_rev) for mm in self.cluster.members]
        self.inotify = []
        if shutil.which("inotifywait"):
            self.inotify = [Inotify(mm) for mm in self.cluster.members]

    def start(self):
        for n in self.inotify:
            n.start()
        for w in self.watchers:
            w.start()
        for c in self.clients:
            c.start()

    def finish(self, timeout=60):
        """Stops issuing ops and waits for the running ones (the faults are healed by then)."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for c in self.clients:
            c.join(timeout=max(0.1, deadline - time.monotonic()))
        return [c.name for c in self.clients if c.is_alive()]

    def final_reads(self):
        """After convergence: every register read on every member, as ops after all others."""
        out = []
        for m in self.cluster.members:
            for k in range(self.keys):
                key = f"reg{k}"
                op = self.history.invoke(-1, m.name, key, "read", None)
                try:
                    with open(os.path.join(m.mountpoint, key), "rb") as f:
                        History.complete(op, "ok", checker.canon(f.read().decode("latin-1")))
                except OSError as e:
                    History.complete(op, "fail", error=errname(e))
                out.append(op)
        return out
