"""checker.py: reads a history of register operations and says whether an observer saw something
impossible. Pure Python, no root, no FUSE: tests/faults/test_checker.py feeds it hand-made
histories.

A history is a list of Op. Each op has a call time and, unless it never came back, a return time
(nanoseconds on one monotonic clock), a status ('ok', 'fail' or 'info') and for reads the value
seen. 'info' means indeterminate: a write that timed out or failed with EIO may have taken effect
at any moment after its call, or never.

Checks:
- linearizable(): Wing & Gong's search with memoization as in Knossos and Porcupine, per key. The
  ops are entries of a list ordered by time (calls and returns); the search linearizes a call
  whose op the model accepts in the current state, lifts it out of the list and starts again from
  the head, and backtracks when it meets the return of an op it has not linearized. A cache of
  (set of linearized ops, state) prunes states already explored. An info op returns at infinity,
  so it may be linearized anywhere after its call; the search succeeds once every op that
  returned is linearized, so an info op may also never happen. A truncate (O_TRUNC at open) is
  optional: it may take effect between its call and return or never (raftfs may fold it into the
  commit of the content written after it): at its return it is "linearized" without effect.
- sequential_per_member(): what default mounts promise (ARCHITECTURE.md, "Guarantees"): on one
  member, an op that begins after another ended never reads an older revision than that one
  read or wrote; given the revision of every value from the members' own history of changes.
- the value checks (never written, torn) and lost acknowledgements, from that same history.
"""

import math
import re
import time

INF = math.inf


class Op:
    """One operation on one key. f: 'read', 'write' (content), 'trunc' (O_TRUNC at open: the
    file becomes empty), 'create' (O_EXCL/mkdir, compare-and-create). For 'write', how ('inplace'
    or 'rename'); for 'create', value is the creator and status 'fail' with error 'EEXIST' is an
    observed answer (the key existed), not an op that did nothing."""

    __slots__ = ("id", "process", "member", "key", "f", "how", "value", "call", "ret", "status",
                 "error", "tmp")

    def __init__(self, id, process, member, key, f, value, call, ret=None, status="ok",
                 error=None, how=None, tmp=None):
        self.id = id
        self.process = process
        self.member = member
        self.key = key
        self.f = f
        self.value = value
        self.call = call
        self.ret = ret
        self.status = status
        self.error = error
        self.how = how
        self.tmp = tmp

    def to_dict(self):
        return {s: getattr(self, s) for s in self.__slots__}

    @classmethod
    def from_dict(cls, d):
        return cls(**d)

    def describe(self, t0=0):
        def t(x):
            return "∞" if x is None or x == INF else f"{(x - t0) / 1e9:10.6f}"
        v = self.value
        if isinstance(v, str) and len(v) > 40:
            v = short(v)
        extra = f" {self.error}" if self.error else ""
        how = f"/{self.how}" if self.how else ""
        return (f"[{t(self.call)} → {t(self.ret)}] #{self.id} p{self.process}@{self.member} "
                f"{self.status:4} {self.f}{how} {self.key} {v!r}{extra}")


def short(v):
    """A value as it is shown in reports: writes' values are long, their header says who."""
    if v is None:
        return None
    m = VALUE_RE.match(v)
    if m:
        return f"<{m.group(1)}:{m.group(2)}:{m.group(3)}…>"
    return v if len(v) <= 40 else v[:30] + f"…({len(v)} bytes)"


# Values written by the workload: "<client:seq:length:" + length filler bytes + ">". Unique per
# write, of different lengths, and self-checking: a torn read (bytes of two writes, a short read)
# does not parse.
VALUE_RE = re.compile(r"^<(\d+):(\d+):(\d+):([a-z]*)>$", re.S)


def make_value(client, seq, length):
    fill = chr(ord("a") + (client * 7 + seq) % 26)
    return f"<{client}:{seq}:{length}:" + fill * length + ">"


CANON_RE = re.compile(r"^<(\d+):(\d+):(\d+)>$")


def canon(v):
    """The form a value is kept in: a whole value by its header "<client:seq:length>" (unique),
    an empty file as '', anything else (torn, short) as "!torn" with its length and start."""
    if v == "":
        return ""
    if value_ok(v):
        m = VALUE_RE.match(v)
        return f"<{m.group(1)}:{m.group(2)}:{m.group(3)}>"
    return f"!torn len={len(v)} {v[:48]!r}"


def value_ok(v):
    """Whether v is a whole value the workload could have written ('' is a truncated file), or
    the canonical form of one."""
    if v == "" or CANON_RE.match(v):
        return True
    m = VALUE_RE.match(v)
    if not m:
        return False
    body = m.group(4)
    return len(body) == int(m.group(3)) and len(set(body)) <= 1


# ---------------------------------------------------------------------------------------------
# Models: step(state, op) -> (accepted, new state). States must be hashable.

def register_step(state, op):
    if op.f == "read":
        return state == op.value, state
    if op.f == "write":
        return True, op.value
    if op.f == "trunc":
        return True, ""
    if op.f == "create":
        if op.status == "info":
            return True, state if state is not None else op.value
        if op.status == "fail":  # EEXIST: it existed at that moment
            return state is not None, state
        return state is None, op.value
    raise ValueError(f"unknown op {op.f}")


# ---------------------------------------------------------------------------------------------

class Result:
    def __init__(self, ok, explored=0, unknown=False, reason=""):
        self.ok = ok
        self.unknown = unknown  # the search ran out of its budget
        self.explored = explored
        self.reason = reason

    def __bool__(self):
        return bool(self.ok)


class _Entry:
    __slots__ = ("op", "idx", "is_call", "time", "match", "prev", "next", "optional")

    def __init__(self, op, idx, is_call, time_):
        self.op = op
        self.idx = idx
        self.is_call = is_call
        self.time = time_
        self.match = None
        self.optional = False
        self.prev = None
        self.next = None


def prepare(ops):
    """The ops the search works on: fails that observed nothing and info reads say nothing."""
    out = []
    for op in ops:
        if op.f == "create":
            if op.status == "fail" and op.error != "EEXIST":
                continue
            out.append(op)
        elif op.status == "fail":
            continue
        elif op.f == "read" and op.status != "ok":
            continue
        else:
            out.append(op)
    return out


def linearizable(ops, init, step=register_step, budget_s=60.0):
    """Whether ops (all on one key) are linearizable from state init. Returns a Result."""
    ops = prepare(ops)
    entries = []
    required = 0
    for i, op in enumerate(ops):
        call = _Entry(op, i, True, op.call)
        ret_t = op.ret if (op.status != "info" and op.ret is not None) else INF
        if ret_t != INF:
            required |= 1 << i
        ret = _Entry(op, i, False, ret_t)
        call.optional = ret.optional = op.f == "trunc"
        call.match = ret
        ret.match = call
        entries.append(call)
        entries.append(ret)
    # calls before returns at equal times: they overlap, the permissive reading
    entries.sort(key=lambda e: (e.time, 0 if e.is_call else 1, e.idx))
    head = _Entry(None, -1, False, -INF)
    prev = head
    for e in entries:
        prev.next = e
        e.prev = prev
        prev = e

    def lift(e):
        e.prev.next = e.next
        if e.next:
            e.next.prev = e.prev
        m = e.match
        m.prev.next = m.next
        if m.next:
            m.next.prev = m.prev

    def unlift(e):
        m = e.match
        m.prev.next = m
        if m.next:
            m.next.prev = m
        e.prev.next = e
        if e.next:
            e.next.prev = e

    state = init
    linearized = 0
    cache = set()
    stack = []
    entry = head.next
    explored = 0
    deadline = time.monotonic() + budget_s
    while True:
        if linearized & required == required:
            return Result(True, explored)
        explored += 1
        if explored % 4096 == 0 and time.monotonic() > deadline:
            return Result(False, explored, unknown=True, reason="search budget exhausted")
        if entry is not None and entry.is_call:
            accepted, new = step(state, entry.op)
            if accepted:
                nl = linearized | (1 << entry.idx)
                key = (nl, new)
                if key not in cache:
                    cache.add(key)
                    stack.append((entry, state))
                    state = new
                    linearized = nl
                    lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            if entry is not None and entry.optional:
                # an optional op (a truncate that may have been folded into the write after it)
                # reaching its return unlinearized happened not at all: a choice like any other
                nl = linearized | (1 << entry.idx)
                key = (nl, state)
                if key not in cache:
                    cache.add(key)
                    stack.append((entry.match, state))
                    linearized = nl
                    lift(entry.match)
                    entry = head.next
                    continue
            if not stack:
                return Result(False, explored, reason="no linearization")
            e, state = stack.pop()
            linearized &= ~(1 << e.idx)
            unlift(e)
            entry = e.next


def minimal_failing(ops, init, step=register_step, budget_s=30.0, max_ops=300):
    """A small sub-history that is still not linearizable, to show: the shortest failing prefix
    (by call time), then ops removed one by one while it still fails and every value read in it
    is still written in it. Returns a list of ops, or None if ops pass."""
    ops = sorted(prepare(ops), key=lambda o: o.call)
    if linearizable(ops, init, step, budget_s):
        return None
    lo, hi = 1, len(ops)  # the shortest failing prefix: hi fails
    while lo < hi:
        mid = (lo + hi) // 2
        r = linearizable(ops[:mid], init, step, budget_s)
        if r.ok or r.unknown:
            lo = mid + 1
        else:
            hi = mid
    cur = ops[:hi]
    last = cur[-1]

    def explains(sub):
        written = {init} | {o.value for o in sub if o.f in ("write", "create")}
        if any(o.f == "trunc" for o in sub):
            written.add("")
        return all(o.value in written for o in sub if o.f == "read")

    def still_fails(sub):
        if not explains(sub):
            return False
        r = linearizable(sub, init, step, budget_s)
        return not r.ok and not r.unknown

    # ddmin-like: chunks of ops removed while it still fails, from halves down to single ops;
    # the last op (the one that made the prefix fail) stays
    deadline = time.monotonic() + budget_s
    k = max(1, len(cur) // 2)
    while k >= 1 and time.monotonic() < deadline:
        changed = False
        i = 0
        while i < len(cur) - 1 and time.monotonic() < deadline:
            j = min(i + k, len(cur) - 1)
            sub = cur[:i] + cur[j:]
            if j > i and still_fails(sub):
                cur = sub
                changed = True
            else:
                i = j
        if not changed:
            k //= 2
    assert cur[-1] is last
    return cur[-max_ops:]


# ---------------------------------------------------------------------------------------------
# Checks that need the members' own record of changes: revs maps (key, value) -> revision at
# which that value was put (from `raftfs watch --rev 1 -w json`), empties (key) -> the revisions
# at which the key was put empty.

class Anomaly:
    def __init__(self, kind, key, message, ops):
        self.kind = kind
        self.key = key
        self.message = message
        self.ops = ops

    def report(self, t0=0):
        """The anomaly, its ops in call order; the op it is about (the first given) marked *."""
        lines = [f"ANOMALY {self.kind} on {self.key}: {self.message}"]
        subject = self.ops[0] if self.ops else None
        lines += [("  * " if o is subject else "    ") + o.describe(t0)
                  for o in sorted(self.ops, key=lambda o: o.call)]
        return "\n".join(lines)


def value_anomalies(ops, revs, inits):
    """Reads of values that are torn or were never written."""
    out = []
    for op in ops:
        if op.f != "read" or op.status != "ok":
            continue
        if not value_ok(op.value):
            out.append(Anomaly("torn-read", op.key, f"read {short(op.value)!r} is no whole value",
                               [op]))
        elif op.value != "" and op.value != inits.get(op.key) and (op.key, op.value) not in revs:
            out.append(Anomaly("never-written", op.key,
                               f"read {short(op.value)!r}, which no revision of the key holds",
                               [op]))
    return out


def lost_acks(ops, revs, stale_ns=0):
    """Writes whose close()/rename() returned 0 but whose value no revision holds.

    An in-place write is dropped, as on a local file system, when a rename (or an exchange) replaced
    the file while it was open (its descriptor wrote to the file replaced; fs/ops.c, commit(): "deleted or
    replaced meanwhile"): allowed when a rename of the key, which did commit, overlapped the
    write from its open (the truncate op before it) to its close. On default mounts the writer's
    member may not have applied a rename that returned on another member (bounded staleness), so
    there the rename may also have returned up to stale_ns before the open, unless the writer's
    member had already shown the rename's revision or a later one (a read or write on it that
    returned before the open)."""
    out = []
    shown = {}  # member -> [(ret, revision)] of its ok reads and writes of known revision
    for op in ops:
        if op.status == "ok" and op.f in ("read", "write") and op.value:
            r = revs.get((op.key, op.value))
            if r is not None:
                shown.setdefault((op.member, op.key), []).append((op.ret, r))
    renames = {}
    prev = {}
    last = {}
    for op in sorted(ops, key=lambda o: o.call):
        prev[op.id] = last.get(op.process)
        last[op.process] = op
        if op.f == "write" and op.how in ("rename", "swap") and (op.key, op.value) in revs:
            renames.setdefault(op.key, []).append(op)
    by_key = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    for op in ops:
        if op.f != "write" or op.status != "ok" or (op.key, op.value) in revs:
            continue
        if op.how == "inplace":
            p = prev.get(op.id)
            start = p.call if p is not None and p.f == "trunc" and p.key == op.key else op.call
            seen = max((rv for t, rv in shown.get((op.member, op.key), []) if t < start),
                       default=0)
            over = [r for r in renames.get(op.key, [])
                    if r.call < op.ret and (r.ret is None or r.status == "info"
                                            or r.ret > start - (stale_ns if r.member != op.member
                                                                else 0))
                    and revs[(r.key, r.value)] > seen]
            if over:
                continue
        out.append(Anomaly("lost-ack", op.key,
                           f"{op.how} write acknowledged but in no revision of the key",
                           [op] + _context(by_key.get(op.key, []), op)))
    return out


def _context(kops, op):
    """What shows a lost write: the writes that overlapped it or returned last before it, and the
    first read after it on each member."""
    before = [o for o in kops if o.f in ("write", "trunc") and o is not op and o.ret is not None
              and o.ret < op.call]
    ctx = sorted(before, key=lambda o: o.ret)[-2:]
    ctx += [o for o in kops if o.f in ("write", "trunc") and o is not op and o.call <= op.ret
            and (o.ret is None or o.ret >= op.call)]
    seen = set()
    for o in sorted(kops, key=lambda o: o.call):
        if o.f == "read" and o.status == "ok" and o.call > op.ret and o.member not in seen:
            seen.add(o.member)
            ctx.append(o)
    return ctx


def _rev_range(op, revs, empties, inits):
    """(lowest, highest) revision op could stand for, or None when unknown."""
    if op.f == "write":
        r = revs.get((op.key, op.value))
        return (r, r) if r is not None else None
    if op.f == "read":
        if op.value == "":
            e = empties.get(op.key)
            return (min(e), max(e)) if e else None
        if op.value == inits.get(op.key) and (op.key, op.value) not in revs:
            return (0, 0)
        r = revs.get((op.key, op.value))
        return (r, r) if r is not None else None
    return None


def sequential_per_member(ops, revs, empties, inits):
    """On each member, per key: a read that begins after an op on that member ended reads a
    revision at least as new as that op read or wrote (ok ops only). Also writes: an ok write that
    began after another ok write ended anywhere is at a later revision (writes go through raft)."""
    out = []
    by = {}
    for op in ops:
        if op.status != "ok" or op.f not in ("read", "write"):
            continue
        rr = _rev_range(op, revs, empties, inits)
        if rr is None:
            continue
        by.setdefault((op.member, op.key), []).append((op, rr))
    for (member, key), items in sorted(by.items(), key=lambda kv: str(kv[0])):
        ends = sorted(items, key=lambda x: x[0].ret)
        starts = sorted((x for x in items if x[0].f == "read"), key=lambda x: x[0].call)
        best = None  # the op ended so far with the highest lowest revision
        j = 0
        for op, (lo, hi) in starts:
            while j < len(ends) and ends[j][0].ret < op.call:
                if best is None or ends[j][1][0] > best[1][0]:
                    best = ends[j]
                j += 1
            if best is not None and hi < best[1][0]:
                out.append(Anomaly(
                    "stale-read", key,
                    f"member {member} read revision {hi} after it had shown revision "
                    f"{best[1][0]}", [best[0], op]))
    writes = sorted(((op, rr) for items in by.values() for op, rr in items
                     if op.f == "write"), key=lambda x: x[0].call)
    per_key = {}
    for op, rr in writes:
        per_key.setdefault(op.key, []).append((op, rr))
    for key, ws in per_key.items():
        ends = sorted(ws, key=lambda x: x[0].ret)
        best = None
        j = 0
        for op, (lo, hi) in ws:
            while j < len(ends) and ends[j][0].ret < op.call:
                if best is None or ends[j][1][0] > best[1][0]:
                    best = ends[j]
                j += 1
            if best is not None and lo < best[1][0]:
                out.append(Anomaly(
                    "write-order", key,
                    f"write at revision {lo} began after a write at revision {best[1][0]} "
                    f"returned", [best[0], op]))
    return out


def watch_anomalies(name, events, reference, start=None, cut=False):
    """events: one watch session's events (dicts with revision, type, key, value), in the order it
    printed them; reference: the full history of changes (same form) from one member; start: the
    revision the watch was asked to start at. The session must be exactly the reference's events
    from start (or its first event) to its last: revisions in order, none twice, none missing,
    the same content. cut: the session ended with its member (killed), so its last revision
    may lack events that followed those it printed."""
    out = []
    if not events:
        return out
    lo = events[0]["revision"] if start is None else start
    hi = events[-1]["revision"]
    for a, b in zip(events, events[1:]):
        if b["revision"] < a["revision"]:
            out.append(f"watch {name}: revision {b['revision']} after {a['revision']}")
            return out
    want = [e for e in reference if lo <= e["revision"] <= hi]
    if cut and len(events) < len(want) and all(e["revision"] == hi for e in want[len(events):]):
        want = want[:len(events)]
    key = lambda e: (e["revision"], e["type"], e["key"], e.get("value"))  # noqa: E731
    got = [key(e) for e in events]
    exp = [key(e) for e in want]
    if got != exp:
        gs, es = set(got), set(exp)
        dup = len(got) - len(gs)
        missing = sorted(es - gs)[:5]
        extra = sorted(gs - es)[:5]
        msg = f"watch {name} (revisions {lo}..{hi}) differs from the member history:"
        if dup:
            msg += f" {dup} duplicate events;"
        if missing:
            msg += f" missing {[(m[0], m[1], m[2]) for m in missing]};"
        if extra:
            msg += f" extra {[(m[0], m[1], m[2]) for m in extra]};"
        if not dup and not missing and not extra:
            msg += " same events in another order;"
        out.append(msg)
    return out
