"""diskerr.py: a failing disk under one member (nemesis family `diskerr`), after the load.

Needs the cluster's faultfs layer (faultfs.c). Runs once the cluster has converged and the clients
stopped, on one member chosen by the seed, two faults one after the other:

- fsync-eio: from now on every fsync and fdatasync of the member's disk fails with EIO;
- enospc: from now on every write that grows a file fails with ENOSPC (writes into the WAL's
  preallocated segment still succeed, as on a real full disk: the member meets the error when
  its segment is full and the next one cannot be made).

Files of 1 MiB are written through another member's mount meanwhile (the cluster must keep
serving with two members), until the victim stops. Then:

- the victim must have stopped (exited) with a FATAL line naming a file of its data dir and
  the error; raftfs carrying on, or retrying the fsync that failed and going on, is a failure;
  that line, and only it, is let through cluster.log_problems;
- its disk is replaced: the layer powered off (what the victim had not synced is lost, as with
  a disk that failed) and remounted healthy over what was synced; the victim is restarted and
  must start, converge, and serve what the others serve: the registers' final values and every
  file written during the fault whose close() returned 0.
"""

import os
import random
import re
import time

import harness

MIB = 1 << 20
FATAL = re.compile(r"^(?:\S+ )?FATAL\b")
# what the FATAL line must say, per fault
EXPECT = {"fsync-eio": (re.compile(r"f(data)?sync"), "Input/output error"),
          "fullsync-eio": (re.compile(r"fsync of \S+\.snap"), "Input/output error"),
          "enospc": (re.compile(r"write|append|preallocate|fallocate"), "No space left on device")}


def _write(path, data):
    """Writes data to path through a mount: open, write, close. True when close() returned 0."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError:
        return False
    try:
        os.write(fd, data)
    except OSError:
        os.close(fd)
        return False
    try:
        os.close(fd)
        return True
    except OSError:
        return False


def _value(kind, i, size):
    head = f"<{kind}:{i}:".encode()
    return head + bytes([ord("a") + i % 26]) * (size - len(head) - 1) + b">"


def one_fault(cl, victim, other, kind, note, timeout, size=MIB):
    """One fault on victim's disk, writes of size bytes through other until it stops. Returns
    (problems, acknowledged {path under a mount root: content})."""
    problems = []
    acked = {}
    before = len(victim.daemon.stderr())
    victim.disk_ctl(kind)
    note(f"diskerr: {victim.name}: {kind}; writing files of {size} bytes through {other.name}")
    t0 = time.monotonic()
    i = 0
    while victim.alive and time.monotonic() < t0 + timeout:
        name = f"diskerr-{kind}-{i}"
        data = _value(kind, i, size)
        if _write(os.path.join(other.mountpoint, name), data):
            acked[name] = data
        i += 1
    stopped = not victim.alive
    rc = victim.daemon.proc.poll()
    log = victim.daemon.stderr()[before:]
    if not stopped:
        problems.append(f"ANOMALY diskerr/{kind}: {victim.name} still runs {timeout:.0f}s after "
                        f"its disk began failing ({i} files written through {other.name})")
        return problems, acked
    note(f"diskerr: {victim.name} stopped (exit status {rc}) after {time.monotonic() - t0:.1f}s,"
         f" {i} files written")
    op, err = EXPECT[kind]
    fatal = [ln for ln in log.splitlines() if FATAL.search(ln)]
    named = [ln for ln in fatal if victim.data_dir in ln and op.search(ln) and err in ln]
    if not named:
        problems.append(f"diskerr/{kind}: {victim.name} stopped (exit status {rc}) without a "
                        f"FATAL line naming a file of {victim.data_dir}, the operation and "
                        f"'{err}'; its last lines:\n    " +
                        "\n    ".join(log.splitlines()[-8:]))
    else:
        note(f"diskerr: {victim.name} said: {named[0]}")
        cl.allowed_log.setdefault(victim.name, []).extend(named)
    if rc == 0:
        problems.append(f"diskerr/{kind}: {victim.name} stopped with exit status 0")
    # the two others still serve
    if not _write(os.path.join(other.mountpoint, f"diskerr-{kind}-after"), b"after"):
        problems.append(f"ANOMALY diskerr/{kind}: a write through {other.name} failed after "
                        f"{victim.name} stopped: the two others do not serve")
    else:
        acked[f"diskerr-{kind}-after"] = b"after"
    return problems, acked


def replace_disk(cl, m, note):
    """The member's disk swapped for a healthy one holding what it had synced, and restarted."""
    m.kill()
    m.disk_ctl("power-off")
    m.unmount_disk()
    m.mount_disk()
    m.start()
    m.wait_mounted(30)
    note(f"diskerr: {m.name} restarted on a healthy disk")


def run(cl, wl, seed, note, final_values):
    """Both faults on one member chosen by seed. Returns a list of problems."""
    rng = random.Random(f"diskerr-{seed}")
    victim = rng.choice(cl.members)
    other = rng.choice([m for m in cl.members if m is not victim])
    problems = []
    acked = {}
    for kind, timeout in (("fsync-eio", 30), ("enospc", 120)):
        p, a = one_fault(cl, victim, other, kind, note, timeout)
        problems += p
        acked.update(a)
        try:
            replace_disk(cl, victim, note)
            cl.wait_converged(timeout=60)
        except harness.HarnessError as e:
            problems.append(f"diskerr/{kind}: {victim.name} did not come back on a healthy "
                            f"disk: {e}")
            return problems
        for op in wl.final_reads():
            want = final_values.get(op.key)
            if op.status != "ok" or op.value != want:
                problems.append(f"ANOMALY diskerr/{kind}: after the restart {op.member} serves "
                                f"{op.value!r} on {op.key}, the cluster held {want!r}")
        for m in cl.members:
            lost = []
            for name, data in acked.items():
                try:
                    with open(os.path.join(m.mountpoint, name), "rb") as f:
                        ok = f.read() == data
                except OSError:
                    ok = False
                if not ok:
                    lost.append(name)
            if lost:
                problems.append(f"ANOMALY diskerr/{kind}: {m.name} does not serve {len(lost)} "
                                f"acknowledged files written during the fault: "
                                f"{', '.join(sorted(lost)[:5])}")
    return problems
