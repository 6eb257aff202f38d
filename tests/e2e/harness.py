"""harness.py: start FUSE daemons (raftfs members) as separate processes and always clean up.

What the end-to-end suites rely on, learned from libfuse's own harness:
- each daemon runs in a new process session with its own data dir, peer port and short mountpoint,
  its stdout and stderr captured to files;
- a mount counts as live only once /proc/self/mountinfo lists it; waiting fails fast when the
  daemon exits first, with its stderr in the message;
- teardown always unmounts and reaps, escalating `fusermount3 -u`, then `-u -z`, then writing 1 to
  /sys/fs/fuse/connections/N/abort, then SIGTERM and SIGKILL of the daemon, and waiting for its pid;
- afterwards the daemon's stderr is checked: a sanitizer report or an unexpected ERROR/FATAL line
  fails the test;
- a member a test started in the background (`raftfs mount` without -f: its process is not the
  test's child) is adopted by the workspace, which unmounts it and ends it by the pid in its data
  dir's lock file should the test not get that far.

Nothing here is specific to pytest; conftest.py turns it into fixtures.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

SANITIZER_PATTERNS = [
    re.compile(r"ERROR: AddressSanitizer"),
    re.compile(r"ERROR: LeakSanitizer"),
    re.compile(r"runtime error:"),  # UndefinedBehaviorSanitizer
    re.compile(r"ThreadSanitizer"),
]
# raftfs log lines read "LEVEL member: message" (after an optional timestamp); these levels are
# failures unless the test said it expects them.
ERROR_LINE = re.compile(r"^(?:\S+ )?(ERROR|FATAL)\b")


FUSECTL = "/sys/fs/fuse/connections"


def ensure_fusectl():
    """Mounts the fusectl file system when it is not (as root), so connections can be aborted."""
    if os.path.ismount(FUSECTL) or not os.path.isdir(FUSECTL):
        return
    subprocess.run(["mount", "-t", "fusectl", "fusectl", FUSECTL], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)


class HarnessError(Exception):
    """The harness could not bring a daemon up or down as asked."""


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mount_entry(mountpoint):
    """The mountinfo line for mountpoint as (major:minor, fstype), or None when not mounted.

    Only the parent directory is resolved: realpath of the mountpoint itself would stat the
    mount's root, and hang on a mount whose daemon no longer answers."""
    path = os.path.abspath(mountpoint)
    target = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            # fields: id parent major:minor root mountpoint options [optional...] - fstype source
            if fields[4].encode().decode("unicode_escape") == target:
                sep = fields.index("-")
                return fields[2], fields[sep + 1]
    return None


def is_mounted(mountpoint):
    return mount_entry(mountpoint) is not None


class Daemon:
    """One daemon process serving one mountpoint. Create with start(); always call stop()."""

    def __init__(self, name, argv, mountpoint, workdir, env=None):
        self.name = name
        self.argv = list(argv)
        self.mountpoint = mountpoint
        self.stdout_path = os.path.join(workdir, name + ".stdout")
        self.stderr_path = os.path.join(workdir, name + ".stderr")
        self.env = env
        self.proc = None
        self.conn = None  # the FUSE connection number, known once mounted
        self.teardown_steps = []  # what stop() had to do, for tests of the harness itself
        self.expected_errors = []  # regexes of ERROR lines this test expects

    def start(self):
        os.makedirs(self.mountpoint, exist_ok=True)
        # appended: a restarted daemon's earlier output stays for the checker
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, start_new_session=True, env=self.env)
        return self

    def stderr(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def command_line(self):
        return " ".join(self.argv)

    def wait_mounted(self, timeout=10.0):
        """Waits until mountinfo lists the mount; fails at once if the daemon exits first."""
        deadline = time.monotonic() + timeout
        while True:
            entry = mount_entry(self.mountpoint)
            if entry is not None:
                major_minor, _ = entry
                self.conn = int(major_minor.split(":")[1])
                return self
            rc = self.proc.poll()
            if rc is not None:
                raise HarnessError(
                    f"{self.name} exited with status {rc} before mounting {self.mountpoint}\n"
                    f"command: {self.command_line()}\nstderr:\n{self.stderr()}")
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"{self.name} did not mount {self.mountpoint} within {timeout}s\n"
                    f"command: {self.command_line()}\nstderr:\n{self.stderr()}")
            time.sleep(0.01)

    def abort_connection(self):
        """Aborts the FUSE connection: every request blocked on it fails with ENOTCONN."""
        if self.conn is None:
            return False
        ensure_fusectl()
        path = f"{FUSECTL}/{self.conn}/abort"
        try:
            with open(path, "w") as f:
                f.write("1")
            self.teardown_steps.append("abort")
            return True
        except OSError:
            return False

    def _fusermount(self, *flags):
        r = subprocess.run(["fusermount3", *flags, self.mountpoint], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        return r.returncode == 0

    def _wait_exit(self, timeout):
        try:
            self.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def _wait_unmounted(self, timeout):
        deadline = time.monotonic() + timeout
        while is_mounted(self.mountpoint):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self, grace=5.0):
        """Unmounts and reaps, escalating as needed. Safe to call twice and after a crash."""
        if self.proc is None:
            return
        if is_mounted(self.mountpoint):
            if self._fusermount("-u") and self._wait_unmounted(grace):
                self.teardown_steps.append("unmount")
            else:
                self.teardown_steps.append("lazy-unmount")
                self._fusermount("-u", "-z")
                # A lazily unmounted connection still holds its blocked callers: abort them.
                if not self._wait_exit(0.5):
                    self.abort_connection()
        if not self._wait_exit(grace):
            self.teardown_steps.append("sigterm")
            self._signal(signal.SIGTERM)
            if not self._wait_exit(grace):
                self.abort_connection()
                self.teardown_steps.append("sigkill")
                self._signal(signal.SIGKILL)
                self.proc.wait(timeout=30)

    def kill(self, sig=signal.SIGKILL):
        """Sends sig to the daemon (e.g. to crash it on purpose) and waits when it is fatal."""
        self._signal(sig)
        if sig == signal.SIGKILL:
            self.proc.wait(timeout=30)
            if is_mounted(self.mountpoint):
                self._fusermount("-u", "-z")

    def _signal(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stderr_problems(self):
        """Lines of stderr that must fail the test: sanitizer reports, unexpected errors."""
        problems = []
        for line in self.stderr().splitlines():
            if any(p.search(line) for p in SANITIZER_PATTERNS):
                problems.append(line)
            elif ERROR_LINE.search(line) and not any(re.search(e, line)
                                                     for e in self.expected_errors):
                problems.append(line)
        return problems

    def expect_error(self, regex):
        """Declares that an ERROR line matching regex is part of this test, not a failure."""
        self.expected_errors.append(regex)


class Workspace:
    """A short temp dir holding the mountpoints, data dirs and logs of one test's daemons."""

    def __init__(self):
        # Short paths: mountpoints appear in mountinfo and in error messages.
        self.root = tempfile.mkdtemp(prefix="rfs", dir="/tmp")
        self.daemons = []
        self.adopted = []  # (mountpoint, data dir) of members started in the background

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def add(self, daemon):
        self.daemons.append(daemon)
        return daemon

    def adopt(self, mountpoint, data_dir):
        """A member started in the background: close() unmounts and ends it if still there."""
        self.adopted.append((mountpoint, data_dir))

    def _stop_adopted(self, mountpoint, data_dir, grace=5.0):
        if is_mounted(mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", mountpoint], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        try:
            with open(os.path.join(data_dir, "lock")) as f:
                pid = int(f.read().split()[0])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if data_dir.encode() not in f.read():
                    return  # the member is gone and the pid is someone else's now
        except (OSError, ValueError, IndexError):
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if not os.path.exists(f"/proc/{pid}"):
                    return
                time.sleep(0.02)

    def abort_all(self):
        """Emergency brake from the timeout watchdog: unblocks anything stuck in a mount."""
        for d in self.daemons:
            d.abort_connection()
            if d.proc is not None:
                d._signal(signal.SIGKILL)

    def close(self):
        """Stops every daemon, then removes the workspace. Returns stderr problems by daemon."""
        problems = {}
        for mountpoint, data_dir in self.adopted:
            self._stop_adopted(mountpoint, data_dir)
        for d in reversed(self.daemons):
            try:
                d.stop()
            finally:
                found = d.stderr_problems()
                if found:
                    problems[d.name] = found
        mountpoints = [d.mountpoint for d in self.daemons] + [mp for mp, _ in self.adopted]
        if not any(is_mounted(mp) for mp in mountpoints):
            shutil.rmtree(self.root, ignore_errors=True)
        return problems


def member_argv(binary, name, data_dir, port, initial_cluster, mountpoint, extra=()):
    """The argv of `raftfs mount -f` for one member (also accepted by the test daemon)."""
    return [binary, "mount", "-f", "--name", name, "--data-dir", data_dir,
            "--listen-peer", f"127.0.0.1:{port}", "--initial-cluster", initial_cluster,
            "--initial-cluster-token", "e2e", *extra, mountpoint]


def start_cluster(ws, n, binary, extra=(), wait=True, timeout=20.0, env=None):
    """Starts n members named n1..nN on loopback, each with its own dir, port and mountpoint;
    env(name), if given, is the environment of that member's daemon."""
    names = [f"n{i + 1}" for i in range(n)]
    ports = [free_port() for _ in names]
    initial = ",".join(f"{nm}=127.0.0.1:{p}" for nm, p in zip(names, ports))
    members = []
    for nm, port in zip(names, ports):
        mp = ws.path(nm)
        argv = member_argv(binary, nm, ws.path(nm + ".data"), port, initial, mp, extra)
        members.append(ws.add(Daemon(nm, argv, mp, ws.root, env(nm) if env else None)).start())
    if wait:
        for m in members:
            m.wait_mounted(timeout)
    return members
