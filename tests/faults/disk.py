"""disk.py: WAL damage on a stopped member (nemesis family `disk`), after the load.

Run once the cluster has converged and the clients stopped, so the two other members hold every
committed entry: losing the victim's last record can then cost nothing (it cannot win an
election without a vote from one of them, whose logs are longer), and what the victim does with
the damage is all that is tested (wal/FORMAT.md, "Reading"):

- torn tail: the victim is SIGKILLed, the bytes of its last WAL record after a random point are
  zeroed (a crash mid-write in a preallocated segment), it is restarted. It must either repair
  the tail (start, log the file and offset, converge, serve what the others serve) or refuse to
  start with a line naming the file and an offset; never serve something else.
- flipped bit: the victim is SIGKILLed, one bit of an earlier record (not the last) is flipped,
  it is restarted. It must refuse to start, naming the file and an offset. Then the segment is
  restored and it must start and converge again.
- flipped bit in the newest snapshot file, if the victim has one: it must either start past it
  (the file renamed .broken, the next newest or the WAL used, named in its log) and serve what
  the others serve, or refuse naming the file; refused, the file is restored and it must start.
"""

import os
import random
import struct
import time

import harness


def segments(data_dir):
    d = os.path.join(data_dir, "member", "wal")
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".wal"))


def frames(path):
    """(start, end) of every written frame of a segment, up to the zero length word."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off + 8 <= len(data):
        (word,) = struct.unpack_from("<Q", data, off)
        if word == 0:
            break
        length = word & ((1 << 56) - 1)
        pad = (word >> 56) & 0x7 if word >> 63 else 0
        end = off + 8 + length + pad
        if end > len(data):
            break
        out.append((off, end))
        off = end
    return out


def _outcome(m, timeout=30):
    """'mounted' or 'exited' (with the exit status), after a restart."""
    try:
        m.wait_mounted(timeout)
        return "mounted", None
    except harness.HarnessError:
        rc = m.daemon.proc.poll()
        if rc is None:
            return "hung", None
        return "exited", rc


def _names_file_and_offset(text, seg):
    base = os.path.basename(seg)
    return any(base in ln and "offset" in ln for ln in text.splitlines())


def run(cl, wl, seed, note, final_values):
    """Both faults on one member chosen by seed. Returns a list of problems."""
    rng = random.Random(f"disk-{seed}")
    problems = []
    m = rng.choice(cl.members)

    def converge_and_compare(what):
        rev = cl.wait_converged(timeout=60)
        for op in wl.final_reads():
            want = final_values.get(op.key)
            if op.status != "ok" or op.value != want:
                problems.append(f"ANOMALY disk/{what}: after the restart {op.member} serves "
                                f"{op.value!r} on {op.key}, the cluster held {want!r}")
        return rev

    # 1. torn tail
    m.kill()
    seg = segments(m.data_dir)[-1]
    fr = frames(seg)
    if len(fr) < 2:
        return [f"disk: {seg} has {len(fr)} records: nothing to tear"]
    s, e = fr[-1]
    with open(seg, "rb") as f:
        f.seek(s)
        rec = f.read(e - s)
    last_nz = max(i for i, b in enumerate(rec) if b)  # zeroing only padding would change nothing
    cut = s + rng.randrange(1, last_nz + 1)
    with open(seg, "r+b") as f:
        f.seek(cut)
        f.write(b"\0" * (e - cut))
        f.flush()
        os.fsync(f.fileno())
    note(f"disk: {m.name}: last record of {os.path.basename(seg)} [{s}, {e}) zeroed from {cut}")
    before = len(m.daemon.stderr())
    m.start()
    how, rc = _outcome(m)
    log = m.daemon.stderr()[before:]
    if how == "mounted":
        note(f"disk: {m.name} repaired the torn tail and started")
        if not _names_file_and_offset(log, seg):
            problems.append(f"disk/torn-tail: {m.name} started without a log line naming "
                            f"{os.path.basename(seg)} and an offset")
        converge_and_compare("torn-tail")
    elif how == "exited":
        note(f"disk: {m.name} refused the torn tail (exit {rc})")
        if not _names_file_and_offset(log, seg):
            problems.append(f"disk/torn-tail: {m.name} exited {rc} without naming "
                            f"{os.path.basename(seg)} and an offset:\n{log[-2000:]}")
        problems.append(f"disk/torn-tail: {m.name} refused a torn last record instead of "
                        f"repairing it (wal/FORMAT.md: a torn tail is truncated)")
        return problems
    else:
        problems.append(f"disk/torn-tail: {m.name} neither mounted nor exited in 30 s")
        m.kill()
        return problems

    # 2. a flipped bit in an earlier record of the last segment
    time.sleep(1)
    m.kill()
    seg = segments(m.data_dir)[-1]
    fr = frames(seg)
    if len(fr) < 3:
        return problems + [f"disk: {seg} has {len(fr)} records: nothing to flip"]
    s, e = fr[rng.randrange(1, len(fr) - 1)]
    pos = rng.randrange(s, e)
    bit = rng.randrange(8)
    with open(seg, "r+b") as f:
        f.seek(pos)
        orig = f.read(1)
        f.seek(pos)
        f.write(bytes([orig[0] ^ (1 << bit)]))
        f.flush()
        os.fsync(f.fileno())
    note(f"disk: {m.name}: bit {bit} of byte {pos} of {os.path.basename(seg)} flipped "
         f"(record [{s}, {e}) of {len(fr)})")
    before = len(m.daemon.stderr())
    m.start()
    how, rc = _outcome(m)
    log = m.daemon.stderr()[before:]
    if how == "mounted":
        problems.append(f"ANOMALY disk/bit-flip: {m.name} started on a WAL with bit {bit} of byte "
                        f"{pos} of {os.path.basename(seg)} flipped")
        m.kill()
    elif how == "exited":
        note(f"disk: {m.name} refused the flipped bit (exit {rc})")
        if not _names_file_and_offset(log, seg):
            problems.append(f"disk/bit-flip: {m.name} refused without naming "
                            f"{os.path.basename(seg)} and an offset:\n{log[-2000:]}")
    else:
        problems.append(f"disk/bit-flip: {m.name} neither mounted nor exited in 30 s")
        m.kill()
    with open(seg, "r+b") as f:
        f.seek(pos)
        f.write(orig)
        f.flush()
        os.fsync(f.fileno())
    m.start()
    how, rc = _outcome(m)
    if how != "mounted":
        problems.append(f"disk/bit-flip: {m.name} did not start again on the restored WAL "
                        f"({how} {rc})")
        return problems
    note(f"disk: {m.name} started again on the restored segment")
    converge_and_compare("bit-flip-restored")

    # 3. a flipped bit in the newest snapshot file, when there is one
    snapdir = os.path.join(m.data_dir, "member", "snap")
    snaps = sorted(f for f in os.listdir(snapdir) if f.endswith(".snap")) \
        if os.path.isdir(snapdir) else []
    if not snaps:
        note(f"disk: {m.name} has no snapshot file to damage")
        return problems
    time.sleep(1)
    m.kill()
    snap = os.path.join(snapdir, snaps[-1])
    size = os.path.getsize(snap)
    pos = rng.randrange(size)
    bit = rng.randrange(8)
    with open(snap, "r+b") as f:
        f.seek(pos)
        orig = f.read(1)
        f.seek(pos)
        f.write(bytes([orig[0] ^ (1 << bit)]))
        f.flush()
        os.fsync(f.fileno())
    note(f"disk: {m.name}: bit {bit} of byte {pos} of {snaps[-1]} ({size} bytes) flipped")
    before = len(m.daemon.stderr())
    m.start()
    how, rc = _outcome(m)
    log = m.daemon.stderr()[before:]
    named = any(snaps[-1] in ln for ln in log.splitlines())
    if how == "mounted":
        # wal/FORMAT.md: the file is renamed .broken, the next newest (or none) is used
        note(f"disk: {m.name} started past the damaged snapshot"
             f"{' (named in its log)' if named else ''}")
        if not named:
            problems.append(f"disk/snap-flip: {m.name} started without a log line naming "
                            f"{snaps[-1]}")
        converge_and_compare("snap-flip")
    elif how == "exited":
        note(f"disk: {m.name} refused the damaged snapshot (exit {rc})")
        if not named:
            problems.append(f"disk/snap-flip: {m.name} refused without naming {snaps[-1]}:\n"
                            f"{log[-2000:]}")
        if os.path.exists(snap + ".broken") and not os.path.exists(snap):
            os.rename(snap + ".broken", snap)
        with open(snap, "r+b") as f:
            f.seek(pos)
            f.write(orig)
            f.flush()
            os.fsync(f.fileno())  # on faultfs an unsynced write is gone at the next power cut
        dfd = os.open(snapdir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)  # and so is the rename back (faultfs --strict-dirs)
        finally:
            os.close(dfd)
        m.start()
        how, rc = _outcome(m)
        if how != "mounted":
            problems.append(f"disk/snap-flip: {m.name} did not start again on the restored "
                            f"snapshot ({how} {rc})")
            return problems
        converge_and_compare("snap-flip-restored")
    else:
        problems.append(f"disk/snap-flip: {m.name} neither mounted nor exited in 30 s")
        m.kill()
    return problems
