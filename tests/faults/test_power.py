#!/usr/bin/python3
"""test_power.py: raftfs members on faultfs disks (faultfs.c), without a workload or nemesis.

Three members in network namespaces (cluster.py), each data dir on faultfs --strict-dirs (a
change of a name survives a power cut only once its directory was fsynced):

1. after a power cut of every member, each serves at once (as soon as it is mounted again) at
   least the value it showed before the cut: a member applies an entry only once the entry's
   commit is durable in its WAL, and replays up to that commit before it mounts;
2. fsync returning EIO on one member (diskerr.py): it stops with a FATAL line naming the file and
   the operation, the two others serve, and restarted on a healthy disk it serves every
   acknowledged write;
3. the same with ENOSPC for writes that grow a file;
4. fsync (not fdatasync) returning EIO on one member of a cluster that snapshots every 50
   entries: the snapshot's child process meets it first, and the member must stop with a FATAL
   line naming the snapshot file.

Needs root, /dev/fuse, iproute2 and nftables; exits 77 (skipped) without them. RAFTFS_BIN and
RAFTFS_FAULTFS_BIN name the binaries.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cluster as clustermod  # noqa: E402
import diskerr  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
SKIP = 77


def read(m, name):
    """The file's content through m's mount, or None when there is no such file."""
    try:
        with open(os.path.join(m.mountpoint, name), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def power_all_keeps_what_was_shown(cl, problems, rounds=3):
    names = [m.name for m in cl.members]
    for r in range(rounds):
        for i in range(5):
            value = f"round {r} value {i}".encode()
            if not diskerr._write(os.path.join(cl.members[i % 3].mountpoint, "reg"), value):
                problems.append(f"round {r}: write {i} failed")
                return
        cl.wait_converged(timeout=30)
        shown = {m.name: read(m, "reg") for m in cl.members}
        cl.power_cut(names)
        for m in cl.members:
            m.start()
        for m in cl.members:
            m.wait_mounted(30)
        # at once: before a leader is elected (1 s election timeout), each serves what its own
        # disk holds
        for m in cl.members:
            got = read(m, "reg")
            if got != shown[m.name]:
                problems.append(f"round {r}: after a power cut of all, {m.name} serves {got!r}, "
                                f"it showed {shown[m.name]!r} before")
        cl.wait_leader(30)


def snapshot_fsync_fails(binary, faultfs, problems):
    """Part 4, on a cluster of its own."""
    cl = clustermod.Cluster(binary, extra=["--snapshot-count", "50"], faultfs=faultfs)
    notes = []
    try:
        cl.setup_network()
        cl.start()
        victim, other = cl.members[2], cl.members[0]
        p, acked = diskerr.one_fault(cl, victim, other, "fullsync-eio", notes.append, 60,
                                     size=4096)
        problems += p
        diskerr.replace_disk(cl, victim, notes.append)
        cl.wait_converged(timeout=60)
        lost = [n for n, data in acked.items() if read(victim, n) != data]
        if lost:
            problems.append(f"fullsync-eio: {victim.name} lost acknowledged files {lost[:5]}")
        for n, lines in cl.log_problems().items():
            problems.append(f"log of {n}: " + "\n    ".join(lines[:10]))
    finally:
        for n in notes:
            print("  " + n)
        keep = f"/tmp/raftfs-test-power-snap-{time.strftime('%Y%m%dT%H%M%S')}" \
            if problems else None
        cl.close(keep_logs_in=keep)


def main():
    binary = os.environ.get("RAFTFS_BIN", os.path.join(REPO, "build", "fs", "raftfs"))
    faultfs = os.environ.get("RAFTFS_FAULTFS_BIN",
                             os.path.join(REPO, "build", "tests", "faults", "faultfs"))
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        print("test_power: skipped (needs root and /dev/fuse)")
        return SKIP
    for tool in ("ip", "nft", "nsenter", "fusermount3"):
        if not clustermod.shutil.which(tool):
            print(f"test_power: skipped ({tool} is not installed)")
            return SKIP
    clustermod.sweep_stale()
    # --strict-dirs: a member's directories must be fsynced into their parents, or a power cut
    # takes them, and the member starts again as a new one
    cl = clustermod.Cluster(binary, faultfs=faultfs, faultfs_args=["--strict-dirs"])
    problems = []
    failed = True
    try:
        cl.setup_network()
        cl.start()
        power_all_keeps_what_was_shown(cl, problems)
        notes = []
        victim, other = cl.members[1], cl.members[0]
        for kind, timeout in (("fsync-eio", 30), ("enospc", 120)):
            p, acked = diskerr.one_fault(cl, victim, other, kind, notes.append, timeout)
            problems += p
            diskerr.replace_disk(cl, victim, notes.append)
            cl.wait_converged(timeout=60)
            for m in cl.members:
                lost = [n for n, data in acked.items() if read(m, n) != data]
                if lost:
                    problems.append(f"{kind}: {m.name} lost acknowledged files {lost[:5]}")
        for n in notes:
            print("  " + n)
        for n, lines in cl.log_problems().items():
            problems.append(f"log of {n}: " + "\n    ".join(lines[:10]))
        cl.close()
        snapshot_fsync_fails(binary, faultfs, problems)
        failed = bool(problems)
    except Exception as e:  # noqa: BLE001 - reported as a failure
        problems.append(f"ERROR {e!r}")
    finally:
        keep = None
        if problems:
            keep = f"/tmp/raftfs-test-power-{time.strftime('%Y%m%dT%H%M%S')}"
        cl.close(keep_logs_in=keep)
        if keep:
            print(f"test_power: logs kept in {keep}")
    for p in problems:
        print("FAIL:", p)
    print("test_power:", "failed" if failed else "passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
