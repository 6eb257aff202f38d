"""member_harness.py: members as separate memberd processes on loopback TCP, for test_crash.py.

Each member has its own data dir and peer port under one temporary root; its stderr (the member's
log) goes to ROOT/NAME.log, appended across restarts. Commands go over memberd's line protocol on
stdin/stdout (see memberd.c): every command has a tag, every answer comes back with it. Every
process started here is killed and reaped by Cluster.close(), whatever happened.
"""

import itertools
import os
import random
import signal
import socket
import subprocess
import threading
import time

MEMBERD = os.environ.get("MEMBERD_BIN", "../../build/tests/member/memberd")


class MemberGone(Exception):
    """The member's process went away before answering."""


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def parse_status(rest):
    """'status id=.. leader=..' -> dict (numbers as int, id lists as lists of str)."""
    out = {}
    for kv in rest.split()[1:]:
        k, _, v = kv.partition("=")
        if k in ("voters", "learners"):
            out[k] = [x for x in v.split(",") if x]
        elif k in ("id", "cluster", "leader"):
            out[k] = v
        else:
            out[k] = int(v)
    return out


class Member:
    def __init__(self, cluster, name, addr, flags):
        self.cluster = cluster
        self.name = name
        self.addr = addr
        self.flags = list(flags)
        self.data_dir = os.path.join(cluster.root, name)
        self.log_path = os.path.join(cluster.root, name + ".log")
        self.proc = None
        self.id = None
        self._tags = itertools.count(1)
        self._lock = threading.Lock()
        self._answers = {}
        self._waiting = {}
        self._gone = True

    # ---- process ------------------------------------------------------------------------------
    def start(self, timeout=20):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        argv = [MEMBERD, "--name", self.name, "--data-dir", self.data_dir] + self.flags
        with open(self.log_path, "a") as log:
            log.write("#### harness: start %s\n" % " ".join(argv))
            log.flush()
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=log, bufsize=0)
        self.cluster.procs.append(self.proc)
        self._answers = {}
        self._waiting = {}
        self._gone = False
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        ready = self.wait("0", timeout)
        assert ready.startswith("ready "), ready
        self.id = ready.split()[1]
        return self

    def _read(self, proc):
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            tag, _, rest = line.partition(" ")
            with self._lock:
                self._answers[tag] = rest
                ev = self._waiting.get(tag)
            if ev:
                ev.set()
        with self._lock:
            if proc is self.proc:
                self._gone = True
            evs = list(self._waiting.values())
        for ev in evs:
            ev.set()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        """SIGKILL, and reap."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait(10)
            self._reader.join(5)

    def terminate(self, timeout=15):
        """SIGTERM; returns the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        return rc

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # ---- commands -----------------------------------------------------------------------------
    def send(self, cmd):
        tag = "t%d" % next(self._tags)
        with self._lock:
            if self._gone:
                raise MemberGone(self.name)
            self._waiting[tag] = threading.Event()
        try:
            self.proc.stdin.write(("%s %s\n" % (tag, cmd)).encode())
        except (BrokenPipeError, ValueError, OSError):
            raise MemberGone(self.name)
        return tag

    def wait(self, tag, timeout=20):
        with self._lock:
            ev = self._waiting.setdefault(tag, threading.Event())
        if tag not in self._answers and not ev.wait(timeout):
            raise TimeoutError("%s: no answer to %s in %ss" % (self.name, tag, timeout))
        with self._lock:
            self._waiting.pop(tag, None)
            if tag not in self._answers:
                raise MemberGone(self.name)
            return self._answers.pop(tag)

    def cmd(self, cmd, timeout=20):
        return self.wait(self.send(cmd), timeout)

    def status(self):
        return parse_status(self.cmd("status", 10))

    def put(self, value, timeout=20):
        """('ok', index) or ('err', name)."""
        ans = self.cmd("put " + value, timeout).split()
        return (ans[0], int(ans[1])) if ans[0] == "ok" else (ans[0], ans[2])

    def hash(self):
        _, count, h, last = self.cmd("hash", 10).split()
        return int(count), h, int(last)

    def dump(self):
        """[(index, value)] in apply order."""
        parts = self.cmd("dump", 30).split()
        items = []
        for p in parts[3:]:
            i, _, v = p.partition(":")
            items.append((int(i), v))
        assert len(items) == int(parts[1])
        return items


class Cluster:
    """N members n1..nN with fresh ports; more can be added with add()."""

    def __init__(self, root, n=3, token="crash-cluster", extra=()):
        self.root = root
        self.token = token
        self.extra = list(extra)
        self.procs = []
        self.members = {}
        self.initial = []
        for i in range(1, n + 1):
            self.initial.append(("n%d" % i, "127.0.0.1:%d" % free_port()))
        self.initial_flag = ",".join("%s=%s" % p for p in self.initial)
        for name, addr in self.initial:
            self.members[name] = Member(self, name, addr, self.flags_for(self.initial_flag, "new"))

    def flags_for(self, initial, state, token=None):
        return ["--initial-cluster", initial, "--initial-cluster-state", state,
                "--initial-cluster-token", token or self.token] + self.extra

    def add(self, name, flags):
        addr = "127.0.0.1:%d" % free_port()
        m = Member(self, name, addr, [])
        m.flags = flags(addr)
        self.members[name] = m
        return m

    def start(self):
        for m in self.members.values():
            m.start()
        return self

    def __getitem__(self, name):
        return self.members[name]

    def running(self):
        return [m for m in self.members.values() if m.running()]

    def leader(self, among=None, timeout=10):
        """The member that leads and that every running member of among agrees on."""
        among = among or self.running()
        deadline = time.monotonic() + timeout
        while True:
            try:
                sts = {m.name: m.status() for m in among}
                leaders = [m for m in among if sts[m.name]["is_leader"]]
                if len(leaders) == 1 and all(s["leader"] == leaders[0].id for s in sts.values()):
                    return leaders[0]
            except (MemberGone, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("no agreed leader among %s in %ss" %
                                     ([m.name for m in among], timeout))
            time.sleep(0.05)

    def wait_same(self, members, timeout=30):
        """Until every member holds the same applied list (count and hash); returns it."""
        deadline = time.monotonic() + timeout
        while True:
            hs = [m.hash() for m in members]
            if all(h == hs[0] for h in hs):
                return hs[0]
            if time.monotonic() > deadline:
                raise AssertionError("members differ after %ss: %s" %
                                     (timeout, {m.name: h for m, h in zip(members, hs)}))
            time.sleep(0.1)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def report(self):
        """Data dirs and logs, for a failed test."""
        out = ["==== data dir %s" % self.root]
        for dirpath, _, files in sorted(os.walk(self.root)):
            for f in sorted(files):
                p = os.path.join(dirpath, f)
                try:
                    out.append("  %s %d" % (p, os.path.getsize(p)))
                except OSError:
                    pass
        for m in self.members.values():
            log = m.log().splitlines()
            out.append("==== %s (%s, id %s) log, last 150 of %d lines" %
                       (m.name, m.addr, m.id, len(log)))
            out.extend(log[-150:])
        return "\n".join(out)


class Writer(threading.Thread):
    """Puts PREFIX<k> through the given members in turn while running; records what was acked."""

    def __init__(self, members, prefix, timeout=10):
        super().__init__(daemon=True)
        self.members = members
        self.prefix = prefix
        self.timeout = timeout
        self.acked = []
        self.failed = []
        self._halt = threading.Event()
        self.error = None

    def run(self):
        k = 0
        rnd = random.Random(self.prefix)
        try:
            while not self._halt.is_set():
                live = [m for m in self.members if m.running()]
                if not live:
                    time.sleep(0.05)
                    continue
                m = rnd.choice(live)
                v = "%s%d" % (self.prefix, k)
                k += 1
                try:
                    ans = m.put(v, self.timeout)
                except (MemberGone, TimeoutError):
                    self.failed.append(v)
                    time.sleep(0.02)
                    continue
                if ans[0] == "ok":
                    self.acked.append(v)
                else:
                    self.failed.append(v)
                    time.sleep(0.02)
        except Exception as e:  # noqa: BLE001 - reported by stop()
            self.error = e

    def stop(self):
        self._halt.set()
        self.join(self.timeout + 10)
        assert not self.is_alive(), "writer %s did not stop" % self.prefix
        assert self.error is None, self.error
        return self.acked


def check_history(members, acked):
    """Every member holds the same list, indexes increasing, and every acked value once."""
    dumps = {m.name: m.dump() for m in members}
    first = next(iter(dumps.values()))
    for name, d in dumps.items():
        assert d == first, "%s's history differs" % name
    idx = [i for i, _ in first]
    assert idx == sorted(set(idx)), "indexes not strictly increasing"
    values = [v for _, v in first]
    seen = set()
    for v in values:
        assert v not in seen, "%s applied twice" % v
        seen.add(v)
    missing = [v for v in acked if v not in seen]
    assert not missing, "%d acknowledged writes lost: %s" % (len(missing), missing[:20])
    return first
