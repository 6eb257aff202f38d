"""cluster.py: a raftfs cluster under test, each member in a network namespace of its own.

Layout of one run (RUN is unique to the run: "rff" + pid + a random suffix):
- namespace RUN-br holds a bridge br0; namespace RUN-nI holds member nI's eth0 (10.231.0.I/24),
  one end of a veth pair whose other end (pI) is a port of br0;
- members are started with `nsenter --net=/run/netns/RUN-nI raftfs mount -f ...`: only the network
  namespace is entered, so their FUSE mounts are in the root mount namespace, where the clients
  and `raftfs watch` use them as users do (`ip netns exec` would mount in a new mount namespace);
- faults on the network are nftables rules in the members' namespaces (table ip faults: a
  partition drops what comes from the cut peers; loss drops a share at random; duplication
  copies outgoing packets with `dup`), and `tc` qdiscs on eth0: netem where the kernel has it,
  otherwise a token bucket (tbf) with a small rate, whose queue delays the peer traffic;
- with clocks=True every member runs under libfaketime (Debian's faketime), its wall clock offset
  by the file RUN/nI.faketime (Member.set_clock), re-read every second; the monotonic clock is
  left true, as an NTP step or `date -s` leaves it.

With a faultfs binary (Cluster(faultfs=...)), each member's data dir is a faultfs mount
(faultfs.c) over a backing directory nI.disk, mounted before the member starts and unmounted
after it stops: power_cut() drops what a member had not synced, as a power failure does.

Everything made here is recorded at once and removed by Cluster.close(), which is safe to call
twice and after any failure; runner.py calls it from finally, atexit and signal handlers. Stale
namespaces of runs whose process is gone are removed at start (sweep_stale).
"""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

import harness  # noqa: E402  (tests/e2e/harness.py: Daemon start/stop escalation, log checks)

SUBNET = "10.231.0"
PEER_PORT = 2380
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def sh(argv, check=True, timeout=20, input=None):
    r = subprocess.run(argv, input=input, stdin=None if input is not None else subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise harness.HarnessError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def sweep_stale():
    """Removes namespaces of earlier runs (rff<pid>x...) whose runner process no longer exists."""
    r = sh(["ip", "netns", "list"], check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(r"^rff(\d+)x[0-9a-f]+-", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            sh(["ip", "netns", "del", name], check=False)


_netem = None


def have_netem():
    """Whether tc can make a netem qdisc here (some kernels are built without sch_netem)."""
    global _netem
    if _netem is None:
        ns = f"rff{os.getpid()}x0-probe"
        try:
            sh(["ip", "netns", "add", ns])
            sh(["ip", "-n", ns, "link", "add", "d0", "type", "dummy"])
            _netem = sh(["tc", "-n", ns, "qdisc", "add", "dev", "d0", "root", "netem",
                         "delay", "1ms"], check=False).returncode == 0
        except (harness.HarnessError, subprocess.SubprocessError):
            _netem = False
        finally:
            sh(["ip", "netns", "del", ns], check=False)
    return _netem


class Member:
    def __init__(self, cluster, i):
        self.cluster = cluster
        self.i = i
        self.name = f"n{i}"
        self.ns = f"{cluster.run}-n{i}"
        self.addr = f"{SUBNET}.{i}"
        self.mountpoint = cluster.path(self.name)
        self.data_dir = cluster.path(self.name + ".data")
        self.daemon = None
        self.paused = False
        self.starts = 0
        self.join_args = []  # after a re-add: joins the running cluster from an empty data dir
        self.backing = cluster.path(self.name + ".disk")  # under the faultfs layer
        self.disk = None  # the faultfs layer (a harness.Daemon), when the cluster has one

    def argv(self):
        c = self.cluster
        return ["nsenter", f"--net=/run/netns/{self.ns}", c.binary, "mount", "-f",
                "--name", self.name, "--data-dir", self.data_dir,
                "--listen-peer", f"{self.addr}:{PEER_PORT}",
                "--initial-cluster", c.initial_cluster, "--initial-cluster-token", c.run,
                "--log-level", "info", *self.join_args, *c.extra, self.mountpoint]

    def env(self):
        """The daemon's environment: None (inherited), or with libfaketime preloaded."""
        if not self.cluster.clocks:
            return None
        e = dict(os.environ, LD_PRELOAD=FAKETIME_LIB, FAKETIME_TIMESTAMP_FILE=self.clock_file,
                 FAKETIME_DONT_FAKE_MONOTONIC="1", FAKETIME_CACHE_DURATION="1")
        # an ASan build refuses a library preloaded before its runtime unless told otherwise
        e["ASAN_OPTIONS"] = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                   "verify_asan_link_order=0"]))
        return e

    @property
    def clock_file(self):
        return self.cluster.path(self.name + ".faketime")

    def set_clock(self, offset):
        """Steps this member's wall clock to real time + offset ("+0", "+1h", "-10m", "+1d"...:
        libfaketime's relative form); it sees the change within a second."""
        with open(self.clock_file + ".new", "w") as f:
            f.write(offset + "\n")
        os.replace(self.clock_file + ".new", self.clock_file)

    def start(self):
        if self.cluster.clocks and not os.path.exists(self.clock_file):
            self.set_clock("+0")
        d = harness.Daemon(self.name, self.argv(), self.mountpoint, self.cluster.logdir,
                           self.env())
        # a stopped or killed member logs warnings and errors about its peers; those are the
        # faults, not failures: only sanitizer reports and FATAL lines count
        d.expect_error(r"\bERROR\b")
        self.daemon = d
        self.starts += 1
        d.start()
        return self

    def wait_mounted(self, timeout=20):
        self.daemon.wait_mounted(timeout)

    # --- the faultfs layer under the data dir ------------------------------------------------
    def mount_disk(self):
        """Mounts a fresh faultfs layer over the backing dir at the data dir."""
        os.makedirs(self.backing, exist_ok=True)
        c = self.cluster
        d = harness.Daemon(self.name + ".disk", [c.faultfs, *c.faultfs_args, self.backing,
                                                 self.data_dir], self.data_dir, c.logdir)
        self.disk = d
        d.start()
        d.wait_mounted(10)

    def unmount_disk(self):
        if self.disk is not None:
            self.disk.stop()

    def disk_ctl(self, command):
        """A faultfs command (power-off, fsync-eio, enospc, heal), in effect when it returns."""
        if self.disk is None:
            raise harness.HarnessError(f"{self.name} has no faultfs layer (Cluster(faultfs=...))")
        with open(os.path.join(self.data_dir, ".faultfs"), "w") as f:
            f.write(command + "\n")

    @property
    def alive(self):
        d = self.daemon  # other threads look while the nemesis restarts it
        return d is not None and d.proc is not None and d.proc.poll() is None

    def root_fd(self, live_only=False):
        """A descriptor of the mount's root, or None when the mount is not there (killed: the
        mountpoint is then a plain directory, and an op there would not be an op of raftfs at
        all), or with live_only when it is down or paused (an op would wait for the SIGCONT).
        FUSE's root is inode 1."""
        if live_only and (not self.alive or self.paused):
            return None
        try:
            fd = os.open(self.mountpoint, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_ino == 1:
                return fd
        except OSError:
            pass
        os.close(fd)
        return None

    def signal(self, sig):
        if self.alive:
            self.daemon._signal(sig)  # the process group: the daemon and its guard

    def pause(self):
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.signal(signal.SIGCONT)
        self.paused = False

    def kill(self):
        """SIGKILL, then the mount is unmounted lazily and its connection aborted, so clients
        blocked in it fail (ENOTCONN) and the mountpoint can be mounted again."""
        if self.daemon is None:
            return
        if self.paused:
            self.resume()
        if self.alive:
            self.daemon._signal(signal.SIGKILL)
            try:
                self.daemon.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self.daemon.abort_connection()
        if harness.is_mounted(self.mountpoint):
            self.daemon._fusermount("-u", "-z")

    def stop(self):
        if self.daemon is not None:
            if self.paused:
                self.resume()
            self.daemon.stop()

    def status(self, timeout=2.0):
        """The member's .raftfs/status as a dict, or None (down, paused, not answering)."""
        if not self.alive or self.paused:
            return None
        try:
            r = subprocess.run(["cat", os.path.join(self.mountpoint, ".raftfs", "status")],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, timeout=timeout)
            return json.loads(r.stdout) if r.returncode == 0 else None
        except (subprocess.TimeoutExpired, ValueError):
            return None


class Cluster:
    def __init__(self, binary, n=3, extra=(), keep=None, clocks=False, faultfs=None,
                 faultfs_args=()):
        self.binary = os.path.abspath(binary)
        self.clocks = clocks
        self.faultfs = os.path.abspath(faultfs) if faultfs else None
        self.faultfs_args = list(faultfs_args)  # e.g. --strict-dirs
        self.extra = list(extra)
        self.run = f"rff{os.getpid()}x{random.getrandbits(24):06x}"
        self.root = tempfile.mkdtemp(prefix="rff", dir="/tmp")
        self.logdir = self.path("logs")
        os.makedirs(self.logdir)
        self.bridge_ns = f"{self.run}-br"
        self.members = [Member(self, i + 1) for i in range(n)]
        self.initial_cluster = ",".join(f"{m.name}={m.addr}:{PEER_PORT}" for m in self.members)
        self.namespaces = []
        self.closed = False
        self.netem = None
        self.rules = {}  # member name -> (drop from set, loss %, dup %)
        self.allowed_log = {}  # member name -> log lines an injected fault made (log_problems)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def member(self, name):
        return next(m for m in self.members if m.name == name)

    # --- network -------------------------------------------------------------------------
    def _netns_add(self, name):
        sh(["ip", "netns", "add", name])
        self.namespaces.append(name)
        sh(["ip", "-n", name, "link", "set", "lo", "up"])

    def setup_network(self):
        self._netns_add(self.bridge_ns)
        sh(["ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge"])
        sh(["ip", "-n", self.bridge_ns, "link", "set", "br0", "up"])
        for m in self.members:
            self._netns_add(m.ns)
            port = f"p{m.i}"
            sh(["ip", "link", "add", "eth0", "netns", m.ns, "type", "veth", "peer", "name", port,
                "netns", self.bridge_ns])
            sh(["ip", "-n", self.bridge_ns, "link", "set", port, "master", "br0"])
            sh(["ip", "-n", self.bridge_ns, "link", "set", port, "up"])
            sh(["ip", "-n", m.ns, "addr", "add", f"{m.addr}/24", "dev", "eth0"])
            sh(["ip", "-n", m.ns, "link", "set", "eth0", "up"])
            self.rules[m.name] = (set(), 0, 0)
            self._apply_rules(m)
        self.netem = have_netem()

    def _nft(self, m, script):
        sh(["nsenter", f"--net=/run/netns/{m.ns}", "nft", "-f", "-"], input=script)

    def _apply_rules(self, m):
        cut, loss, dup = self.rules[m.name]
        lines = ["table ip faults {}", "flush table ip faults", "table ip faults {",
                 "  chain input { type filter hook input priority 0; policy accept;"]
        peers = [p for p in self.members if p is not m]
        for p in peers:
            if p.name in cut:
                lines.append(f"    ip saddr {p.addr} drop;")
        if loss:
            lines.append(f"    ip saddr {SUBNET}.0/24 numgen random mod 100 < {loss} drop;")
        lines.append("  }")
        lines.append("  chain output { type filter hook output priority 0; policy accept;")
        if dup:
            for p in peers:
                lines.append(f"    ip daddr {p.addr} numgen random mod 100 < {dup} "
                             f"dup to {p.addr} device \"eth0\";")
        lines.append("  }")
        lines.append("}")
        self._nft(m, "\n".join(lines) + "\n")

    def partition(self, groups):
        """Cuts every link between members of different groups (lists of names); names in no
        group are cut from everyone. Replaces any earlier partition."""
        where = {}
        for gi, g in enumerate(groups):
            for nm in g:
                where[nm] = gi
        for m in self.members:
            cut = {p.name for p in self.members if p is not m and
                   (m.name not in where or p.name not in where or where[p.name] != where[m.name])}
            self._set(m, cut=cut)

    def cut_links(self, pairs):
        """Cuts exactly the given links (pairs of names), both ways."""
        for m in self.members:
            cut = {b if a == m.name else a for a, b in pairs if m.name in (a, b)}
            self._set(m, cut=cut)

    def _set(self, m, cut=None, loss=None, dup=None):
        c, lo, du = self.rules[m.name]
        self.rules[m.name] = (c if cut is None else cut, lo if loss is None else loss,
                              du if dup is None else dup)
        self._apply_rules(m)

    def heal_partition(self):
        for m in self.members:
            self._set(m, cut=set())

    def link_faults(self, names, loss=0, dup=0, delay_ms=0):
        """On the members named: a share of incoming peer packets lost, of outgoing duplicated,
        and a delay on outgoing (netem, or a slow token bucket where netem is missing)."""
        for nm in names:
            m = self.member(nm)
            self._set(m, loss=loss, dup=dup)
            sh(["tc", "-n", m.ns, "qdisc", "del", "dev", "eth0", "root"], check=False)
            if delay_ms:
                if self.netem:
                    sh(["tc", "-n", m.ns, "qdisc", "add", "dev", "eth0", "root", "netem",
                        "delay", f"{delay_ms}ms", f"{delay_ms // 2}ms", "reorder", "10%"])
                else:
                    sh(["tc", "-n", m.ns, "qdisc", "add", "dev", "eth0", "root", "tbf",
                        "rate", "512kbit", "burst", "4kb", "latency", f"{delay_ms}ms"])

    def heal_links(self):
        for m in self.members:
            self._set(m, loss=0, dup=0)
            sh(["tc", "-n", m.ns, "qdisc", "del", "dev", "eth0", "root"], check=False)

    def heal_network(self):
        for m in self.members:
            self.rules[m.name] = (set(), 0, 0)
            try:
                self._apply_rules(m)
            except harness.HarnessError:
                pass
            sh(["tc", "-n", m.ns, "qdisc", "del", "dev", "eth0", "root"], check=False)

    # --- members -------------------------------------------------------------------------
    def start(self, timeout=30):
        harness.ensure_fusectl()
        for m in self.members:
            os.makedirs(m.mountpoint, exist_ok=True)
            if self.faultfs:
                m.mount_disk()
            m.start()
        for m in self.members:
            m.wait_mounted(timeout)
        self.wait_leader(timeout)

    def power_cut(self, names):
        """A power failure of the members named, at one instant as near as can be: all are
        stopped (SIGSTOP), then every layer powered off (their unsynced data dropped), then the
        members SIGKILLed and their mounts aborted, and each layer remounted fresh over what it
        had synced. The members are left down, ready to be started."""
        ms = [self.member(n) for n in names]
        for m in ms:
            m.signal(signal.SIGSTOP)  # nothing more reaches the disk from here
        for m in ms:
            m.disk_ctl("power-off")
        # every one killed before anything is forked: a child of this process closes the fds
        # it inherited, the clients' files on the stopped members' mounts among them, and each
        # close waits for its member to answer a FUSE flush
        for m in ms:
            m.signal(signal.SIGKILL)
        for m in ms:
            m.kill()
        for m in ms:
            m.paused = False
            m.unmount_disk()
            m.mount_disk()

    def leader(self):
        """The member most members name leader at the highest term they report, or None."""
        votes = {}
        for m in self.members:
            st = self.status_of(m)
            if st and st.get("leader"):
                votes.setdefault((st.get("term", 0), st["leader"]), []).append(m.name)
        if not votes:
            return None
        (term, name), _ = max(votes.items(), key=lambda kv: (kv[0][0], len(kv[1])))
        return self.member(name)

    def status_of(self, m):
        return m.status()

    def wait_leader(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ld = self.leader()
            if ld is not None and ld.alive:
                return ld
            time.sleep(0.2)
        raise harness.HarnessError(f"no leader within {timeout}s")

    def wait_converged(self, timeout=60):
        """Waits until every member answers and all report the same applied index and revision.
        Returns the revision."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            sts = [m.status() for m in self.members]
            last = sts
            if all(sts):
                if len({(s["applied_index"], s["revision"]) for s in sts}) == 1 and \
                        len({s["commit_index"] for s in sts}) == 1:
                    return sts[0]["revision"]
            time.sleep(0.3)
        raise harness.HarnessError(f"members did not converge within {timeout}s: {last}")

    # --- membership ----------------------------------------------------------------------
    def ctl(self, via, *args, timeout=20):
        """`raftfs ARGS` run on member via's mount: (exit status, stdout + stderr)."""
        try:
            r = subprocess.run([self.binary, *args[:1], *args[1:2], via.mountpoint, *args[2:]],
                               capture_output=True, text=True, timeout=timeout)
            return r.returncode, (r.stdout + r.stderr).strip()
        except subprocess.TimeoutExpired:
            return -1, "timed out"

    def voters(self, via):
        """The names in the membership as via's status shows it, or None."""
        st = via.status()
        return None if st is None else sorted(x["name"] for x in st.get("members", []))

    def remove(self, m, via, timeout=20):
        """Removes m from the cluster through via. A removed member stops itself; one that has not
        within timeout (it may never learn it) is killed. Returns (removed, what was said)."""
        rc, out = self.ctl(via, "member", "remove", m.name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            names = self.voters(via)
            if names is not None and m.name not in names:
                break
            time.sleep(0.3)
        else:
            return False, out
        while m.alive and time.monotonic() < deadline:
            time.sleep(0.2)
        if m.alive:
            m.kill()
        else:
            m.daemon.abort_connection()  # nothing of the old mount may linger
        return True, out

    def readd(self, m, via, timeout=30):
        """Adds m back as a learner through via, starts it on an empty data dir to join, waits
        for its mount, then promotes it. Returns what was said; raises when it cannot."""
        shutil.rmtree(m.data_dir, ignore_errors=True)
        m.join_args = ["--initial-cluster-state", "existing"]  # any start from now on joins
        said = []
        deadline = time.monotonic() + timeout
        while True:
            rc, out = self.ctl(via, "member", "add", f"{m.name}={m.addr}:{PEER_PORT}",
                               "--learner")
            said.append(out)
            if rc == 0 or "already exists" in out:
                break
            if time.monotonic() > deadline:
                raise harness.HarnessError(f"member add {m.name}: {out}")
            time.sleep(0.5)
        m.start()
        m.wait_mounted(timeout)
        while True:
            rc, out = self.ctl(via, "member", "promote", m.name)
            said.append(out)
            if rc == 0 or "a voter already" in out:
                return said
            if time.monotonic() > deadline + timeout:
                raise harness.HarnessError(f"member promote {m.name}: {out}")
            time.sleep(0.5)

    # --- teardown ------------------------------------------------------------------------
    def stop_members(self):
        for m in self.members:
            try:
                m.stop()
            except Exception as e:  # noqa: BLE001 - teardown goes on with the others
                print(f"faults: stopping {m.name}: {e}", file=sys.stderr)
                m.kill()

    def log_problems(self):
        """Sanitizer reports and FATAL lines in the members' logs (but the lines an injected
        fault made, which the fault's check put in allowed_log), and sanitizer reports of their
        faultfs layers."""
        out = {}
        for m in self.members:
            if m.daemon is None:
                continue
            allowed = self.allowed_log.get(m.name, ())
            bad = [ln for ln in m.daemon.stderr().splitlines()
                   if (any(p.search(ln) for p in harness.SANITIZER_PATTERNS)
                       or re.search(r"^(?:\S+ )?FATAL\b", ln)) and ln not in allowed]
            if m.disk is not None:
                bad += [ln for ln in m.disk.stderr().splitlines()
                        if any(p.search(ln) for p in harness.SANITIZER_PATTERNS)]
            if bad:
                out[m.name] = bad
        return out

    def close(self, keep_logs_in=None):
        """Stops the members, removes the namespaces and the run's directory (its logs first
        copied to keep_logs_in, when given). Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        try:
            self.stop_members()
        finally:
            for m in self.members:
                try:
                    m.unmount_disk()
                except Exception as e:  # noqa: BLE001 - teardown goes on with the others
                    print(f"faults: unmounting {m.name}'s disk: {e}", file=sys.stderr)
            for ns in reversed(self.namespaces):
                sh(["ip", "netns", "del", ns], check=False)
            self.namespaces = []
            if keep_logs_in:
                os.makedirs(keep_logs_in, exist_ok=True)
                for f in os.listdir(self.logdir):
                    shutil.copy(os.path.join(self.logdir, f), keep_logs_in)
            if not any(harness.is_mounted(m.mountpoint) or harness.is_mounted(m.data_dir)
                       for m in self.members):
                shutil.rmtree(self.root, ignore_errors=True)
            else:
                print(f"faults: {self.root} kept: a mount is still there", file=sys.stderr)
