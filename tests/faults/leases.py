"""leases.py: a client of leases under the faults, and the check of what it saw.

A lease kept alive must not expire, whichever member leads and whatever its wall clock says; one
no longer kept alive must go about one TTL later. The Lessee works in epochs, one lease each:

- grant a lease of TTL seconds (`raftfs lease grant`) on a live member, and bind a file
  `leaseN` to it (`raftfs put --lease`);
- renew it (`raftfs lease keepalive --once`) a few times through live members, at random
  intervals shorter than a third of its TTL, and after each renewal look whether the file is
  there on every live member (a stat through the mount's root);
- then stop renewing and look until the file is gone everywhere (or a bound passes).

Every grant, renewal and look is recorded with its call and return times on the monotonic clock
(the clock the members measure leases on, the same for every process of the machine).

The check (lease_anomalies): a renewal or grant that succeeded was applied after its call, so the
lease's expiry on any leader is at least call + TTL (a new leader gives every lease its TTL
anew). The file goes only by the lease's revoke, committed after that expiry; a member whose look
showed the file, and a later look on the same member that no longer does (or a renewal answered
"not found"), ended before call + TTL of a successful renewal: the lease expired early. At the
end of a run, on the healed cluster, one more epoch bounds the other side: a lease no longer
renewed must be gone within its TTL and a few seconds (final_epoch, late_anomalies).
"""

import json
import os
import random
import subprocess
import threading
import time

NS = time.monotonic_ns


class Look:
    """One observation: an op on member with its call and return times; what is 'present',
    'absent', 'ok', 'gone' (the lease not found) or 'error'."""

    def __init__(self, kind, member, call):
        self.kind = kind
        self.member = member
        self.call = call
        self.ret = None
        self.what = None
        self.detail = ""

    def done(self, what, detail=""):
        self.ret = NS()
        self.what = what
        self.detail = detail
        return self

    def describe(self, t0):
        return (f"{self.kind} on {self.member} [{(self.call - t0) / 1e9:.3f}, "
                f"{(self.ret - t0) / 1e9:.3f}] {self.what}{' ' + self.detail if self.detail else ''}")


class Epoch:
    def __init__(self, n):
        self.n = n
        self.key = f"lease{n}"
        self.id = None
        self.ttl = None
        self.looks = []  # grant, put, renewals and looks in the order they were made


class Lessee(threading.Thread):
    TTL = 5  # the store's minimum

    def __init__(self, cluster, seed):
        super().__init__(daemon=True, name="lessee")
        self.cluster = cluster
        self.rng = random.Random(f"lessee-{seed}")
        self.epochs = []
        self.stop_ev = threading.Event()
        self.errors = []

    def live(self):
        ms = [m for m in self.cluster.members if m.alive and not m.paused]
        return ms

    def cli(self, kind, member, args, input=None):
        look = Look(kind, member.name, NS())
        try:
            r = subprocess.run([self.cluster.binary, *args], input=input, capture_output=True,
                               timeout=15)
        except subprocess.TimeoutExpired:
            return look.done("error", "timed out"), ""
        err = r.stderr.decode(errors="replace").strip()
        if r.returncode == 0:
            return look.done("ok"), r.stdout.decode(errors="replace")
        return look.done("gone" if "not found" in err else "error", err[:120]), ""

    def look(self, ep, member):
        fd = member.root_fd(live_only=True)
        if fd is None:
            return None
        lk = Look("look", member.name, NS())
        try:
            os.stat(ep.key, dir_fd=fd)
            lk.done("present")
        except FileNotFoundError:
            lk.done("absent")
        except OSError as e:
            lk.done("error", str(e))
        finally:
            os.close(fd)
        ep.looks.append(lk)
        return lk

    def look_everywhere(self, ep):
        return [lk for lk in (self.look(ep, m) for m in self.live()) if lk is not None]

    def grant(self, n, members=None):
        """A new epoch: a lease granted and a file bound to it; None if either failed."""
        live = members or self.live()
        if not live:
            return None
        m = self.rng.choice(live)
        ep = Epoch(n)
        lk, out = self.cli("grant", m, ["lease", "grant", m.mountpoint, str(self.TTL), "-w",
                                         "json"])
        ep.looks.append(lk)
        self.epochs.append(ep)
        if lk.what != "ok":
            return None
        try:
            doc = json.loads(out)
            ep.id, ep.ttl = doc["id"], doc["ttl"]
        except (ValueError, KeyError) as e:
            self.errors.append(f"lessee: `raftfs lease grant` printed {out!r}: {e!r}")
            return None
        lk.detail = f"lease {ep.id} ttl {ep.ttl}"
        put, _ = self.cli("put", m, ["put", os.path.join(m.mountpoint, ep.key), "--lease",
                                     str(ep.id)], input=f"held by lease {ep.id}\n".encode())
        ep.looks.append(put)
        return ep if put.what == "ok" else None

    def renew(self, ep, members=None):
        live = members or self.live()
        if not live:
            return None
        m = self.rng.choice(live)
        lk, _ = self.cli("renew", m, ["lease", "keepalive", m.mountpoint, str(ep.id), "--once"])
        ep.looks.append(lk)
        return lk

    def let_go(self, ep, bound_s):
        """Stops renewing; looks until the file is gone on every live member, or bound_s."""
        end = time.monotonic() + bound_s
        while time.monotonic() < end and not self.stop_ev.is_set():
            looks = self.look_everywhere(ep)
            if looks and all(lk.what == "absent" for lk in looks):
                return True
            time.sleep(0.3)
        return False

    def run(self):
        n = 0
        try:
            while not self.stop_ev.is_set():
                n += 1
                ep = self.grant(n)
                if ep is None:
                    time.sleep(0.5)
                    continue
                for _ in range(self.rng.randrange(2, 12)):
                    if self.stop_ev.wait(self.rng.uniform(0.2, ep.ttl / 3)):
                        break
                    lk = self.renew(ep)
                    if lk is not None and lk.what == "gone":
                        break
                    self.look_everywhere(ep)
                self.let_go(ep, ep.ttl + 20)
        except Exception as e:  # noqa: BLE001 - said in the report, never a silent end
            self.errors.append(f"lessee: {e!r}")

    def stop(self):
        self.stop_ev.set()
        self.join(timeout=60)

    def final_epoch(self, note, via=None, slack_s=4.0):
        """On the healed cluster: a lease granted and renewed twice through member `via` (any
        live one if None), then let go, must be gone everywhere within its TTL and slack_s of its
        last renewal's return. Returns anomaly texts."""
        self.stop_ev.clear()
        members = [via] if via is not None else self.live()
        ep = self.grant(len(self.epochs) + 1, members)
        if ep is None:
            return [f"ANOMALY lease-final: no lease could be granted and bound on the healed "
                    f"cluster: {self.epochs[-1].looks[-1].describe(self.epochs[-1].looks[0].call)}"]
        last = None
        for _ in range(2):
            time.sleep(1.0)
            last = self.renew(ep, members)
            if last.what != "ok":
                return [f"ANOMALY lease-final: renewing lease {ep.id} on the healed cluster: "
                        f"{last.describe(ep.looks[0].call)}"]
        gone = self.let_go(ep, ep.ttl + slack_s + 10)
        t_gone = NS()
        note(f"lease {ep.id} (final epoch) let go; gone everywhere "
             f"{(t_gone - last.ret) / 1e9:.1f}s after its last renewal" if gone else
             f"lease {ep.id} (final epoch) not gone {ep.ttl + slack_s + 10}s after its last renewal")
        late = (t_gone - last.ret) / 1e9 - ep.ttl
        if not gone or late > slack_s:
            return [f"ANOMALY lease-late: lease {ep.id} (ttl {ep.ttl}s) last renewed at "
                    f"{last.describe(ep.looks[0].call)} was still there "
                    f"{(t_gone - last.ret) / 1e9:.1f}s later (allowed: its TTL + {slack_s}s)"]
        return []


def lease_anomalies(epochs, t0):
    """The leases that expired early: see the module's comment."""
    out = []
    for ep in epochs:
        if ep.id is None:
            continue
        ttl_ns = ep.ttl * 1_000_000_000
        held = []  # successful grants and renewals so far
        shown = {}  # member -> its first look that showed the file
        for lk in ep.looks:
            if lk.kind in ("grant", "renew") and lk.what == "ok":
                held.append(lk)
            if lk.kind == "look" and lk.what == "present":
                shown.setdefault(lk.member, lk)
            gone = (lk.kind == "look" and lk.what == "absent" and lk.member in shown and
                    shown[lk.member].ret < lk.call) or (lk.kind == "renew" and lk.what == "gone")
            if not gone:
                continue
            early = [h for h in held if lk.ret < h.call + ttl_ns]
            if early:
                h = early[-1]
                lines = [f"ANOMALY lease-early: lease {ep.id} (ttl {ep.ttl}s, file {ep.key}) gone "
                         f"{(h.call + ttl_ns - lk.ret) / 1e9:.2f}s before its TTL ran out since a "
                         f"successful {h.kind}:",
                         "    " + h.describe(t0)]
                if lk.member in shown:
                    lines.append("    " + shown[lk.member].describe(t0))
                lines.append("    " + lk.describe(t0))
                out.append("\n".join(lines))
                break
    return out
