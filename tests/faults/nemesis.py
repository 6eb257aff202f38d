"""nemesis.py: faults on a schedule derived from a seed.

schedule(seed, duration, families) is a pure function: the same seed, duration and families give
the same list of steps (start time, fault, its parameters, how long it lasts), then a quiet gap
before the next. Which member is "the leader" is decided when a step starts (the cluster's
state then), and the Nemesis logs what each step resolved to, so a replay runs the same faults on
the same roles, not always on the same names.

Families and faults:
- partition: isolate-leader, isolate-follower, split (a random member alone against the other
  two: majority/minority), bridge (A-B-C: A and C cut, B, the leader when the seed says so,
  sees both), isolate-all (no quorum anywhere), flap (a new random partition or a heal every
  1-2 s for the step);
- netem: loss (5-30 % of incoming peer packets dropped), dup (10-40 % of outgoing duplicated),
  delay (50-300 ms on outgoing, netem with jitter and reordering where the kernel has netem,
  else a slow token bucket) on one member's links or all of them;
- pause: SIGSTOP of the leader or a follower (daemon and guard) for 1.5-6 s, longer than the
  election timeout (1 s), then SIGCONT;
- kill: SIGKILL of one member (leader or follower), a majority, or all, restarted at the end of
  the step on the same data dir;
- member: leadership moved to a random follower (`raftfs member move-leader`, asked on a random
  member), or a follower or the leader removed from the cluster (`raftfs member remove`; it
  stops itself) and, at the step's end, added back as a learner on an empty data dir, joined and
  promoted to voter;
- clock: the wall clock of the leader or of a follower stepped forward or back (10 minutes, an
  hour, a day), or every member's set apart (skew), for the step, then stepped back (libfaketime,
  Cluster(clocks=True); the monotonic clock stays true, as after an NTP step);
- power: a power cut of the leader, a follower, a majority or all: the members are stopped at one
  instant, their faultfs layers drop every byte not fsynced (cluster.power_cut), and they are
  restarted at the end of the step on what their disks kept. Needs the cluster's faultfs layer.
"""

import random
import threading
import time

FAMILIES = ("partition", "netem", "pause", "kill", "member", "clock")

FAULTS = {
    "partition": ["isolate-leader", "isolate-follower", "split", "bridge", "isolate-all",
                  "flap"],
    "netem": ["loss", "dup", "delay", "mixed"],
    "pause": ["pause-leader", "pause-follower"],
    "kill": ["kill-leader", "kill-follower", "kill-majority", "kill-all"],
    "member": ["move-leader", "readd-follower", "readd-leader"],
    "clock": ["clock-leader", "clock-follower", "clock-skew"],
}
CLOCK_STEPS = ["+10m", "-10m", "+1h", "-1h", "+1d", "-1d"]

# power cuts: each member's data dir on faultfs (cluster.Cluster(faultfs=...))
FAMILIES += ("power",)
FAULTS["power"] = ["power-leader", "power-follower", "power-majority", "power-all"]
# the families that need every member's data dir on faultfs
NEEDS_FAULTFS = ("power",)


class Step:
    def __init__(self, at, fault, dur, params):
        self.at = at
        self.fault = fault
        self.dur = dur
        self.params = params

    def __repr__(self):
        p = " ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"t={self.at:6.1f}s {self.fault:16} for {self.dur:4.1f}s {p}"


def schedule(seed, duration, families=FAMILIES, warmup=2.0, tail=3.0):
    """The steps of a run: faults of the given families, each followed by a quiet gap; the first
    after warmup seconds, the last healed tail seconds before the end."""
    rng = random.Random(f"nemesis-{seed}")
    families = [f for f in FAMILIES if f in families]
    steps = []
    t = warmup
    while families:
        fam = rng.choice(families)
        fault = rng.choice(FAULTS[fam])
        dur = rng.uniform(2.0, 7.0)
        params = {"r": rng.randrange(1 << 30)}  # the choices made at run time (members)
        if fam == "netem":
            params.update(loss=rng.choice([5, 10, 20, 30]) if fault in ("loss", "mixed") else 0,
                          dup=rng.choice([10, 20, 40]) if fault in ("dup", "mixed") else 0,
                          delay=rng.choice([50, 100, 200, 300]) if fault in ("delay", "mixed")
                          else 0, scope=rng.choice(["one", "all"]))
        if fam == "pause":
            dur = rng.uniform(1.5, 6.0)
        if fault == "bridge":
            params["via_leader"] = rng.random() < 0.5
        if fam == "clock":
            params["offsets"] = [rng.choice(CLOCK_STEPS) for _ in range(3)]
        if t + dur > duration - tail:
            break
        steps.append(Step(round(t, 2), fault, round(dur, 2), params))
        t += dur + rng.uniform(1.0, 4.0)
    return steps


class Nemesis(threading.Thread):
    def __init__(self, cluster, steps, log):
        super().__init__(daemon=True, name="nemesis")
        self.cluster = cluster
        self.steps = steps
        self.log = log  # callable(text)
        self.stop_ev = threading.Event()
        self.errors = []
        self.t0 = None

    def note(self, text):
        self.log(f"nemesis {time.monotonic() - self.t0:7.2f}s: {text}")

    def run(self):
        self.t0 = time.monotonic()
        try:
            for st in self.steps:
                if self._sleep_until(st.at):
                    return
                self.do(st)
                if self.stop_ev.is_set():
                    return
        except Exception as e:  # noqa: BLE001 - reported as a failure of the run
            self.errors.append(f"nemesis: {e!r}")
            self.note(f"error: {e!r}")
        finally:
            try:
                self.heal_all()
            except Exception as e:  # noqa: BLE001
                self.errors.append(f"nemesis heal: {e!r}")

    def _sleep_until(self, at):
        while True:
            left = self.t0 + at - time.monotonic()
            if left <= 0:
                return self.stop_ev.is_set()
            if self.stop_ev.wait(min(left, 0.5)):
                return True

    def names(self):
        return [m.name for m in self.cluster.members]

    def leader_or_random(self, rng):
        ld = self.cluster.leader()
        return ld.name if ld is not None else rng.choice(self.names())

    def follower(self, rng):
        ld = self.cluster.leader()
        return rng.choice([n for n in self.names() if ld is None or n != ld.name])

    def do(self, st):
        c = self.cluster
        rng = random.Random(st.params["r"])
        end = time.monotonic() + st.dur
        f = st.fault
        names = self.names()
        if f in ("isolate-leader", "isolate-follower", "split"):
            one = (self.leader_or_random(rng) if f == "isolate-leader" else
                   self.follower(rng) if f == "isolate-follower" else rng.choice(names))
            rest = [n for n in names if n != one]
            self.note(f"{f}: {one} | {' '.join(rest)}")
            c.partition([[one], rest])
            self._wait(end)
            c.heal_partition()
        elif f == "bridge":
            mid = self.leader_or_random(rng) if st.params.get("via_leader") else \
                rng.choice(names)
            a, b = [n for n in names if n != mid]
            self.note(f"bridge: {a} - {mid} - {b} ({a} and {b} cut)")
            c.cut_links([(a, b)])
            self._wait(end)
            c.heal_partition()
        elif f == "isolate-all":
            self.note("isolate-all: no quorum anywhere")
            c.partition([[n] for n in names])
            self._wait(end)
            c.heal_partition()
        elif f == "flap":
            while time.monotonic() < end and not self.stop_ev.is_set():
                x = rng.random()
                if x < 0.3:
                    self.note("flap: healed")
                    c.heal_partition()
                else:
                    one = rng.choice(names)
                    rest = [n for n in names if n != one]
                    self.note(f"flap: {one} | {' '.join(rest)}")
                    c.partition([[one], rest])
                self._wait(min(end, time.monotonic() + rng.uniform(1.0, 2.0)))
            c.heal_partition()
        elif f in FAULTS["netem"]:
            who = names if st.params["scope"] == "all" else [rng.choice(names)]
            p = st.params
            self.note(f"{f} on {','.join(who)}: loss {p['loss']}% dup {p['dup']}% "
                      f"delay {p['delay']} ms ({'netem' if c.netem else 'tbf'})")
            c.link_faults(who, loss=p["loss"], dup=p["dup"], delay_ms=p["delay"])
            self._wait(end)
            c.heal_links()
        elif f in ("pause-leader", "pause-follower"):
            who = self.leader_or_random(rng) if f == "pause-leader" else self.follower(rng)
            self.note(f"{f}: SIGSTOP {who} for {st.dur:.1f}s")
            m = c.member(who)
            m.pause()
            self._wait(end)
            m.resume()
            self.note(f"{f}: SIGCONT {who}")
        elif f.startswith("kill-"):
            if f == "kill-leader":
                who = [self.leader_or_random(rng)]
            elif f == "kill-follower":
                who = [self.follower(rng)]
            elif f == "kill-majority":
                who = rng.sample(names, 2)
            else:
                who = list(names)
            self.note(f"{f}: SIGKILL {' '.join(who)}")
            for n in who:
                c.member(n).kill()
            self._wait(end)
            self.restart(who)
        elif f in FAULTS["power"]:
            who = ([self.leader_or_random(rng)] if f == "power-leader" else
                   [self.follower(rng)] if f == "power-follower" else
                   rng.sample(names, 2) if f == "power-majority" else list(names))
            self.note(f"{f}: power cut of {' '.join(who)}")
            c.power_cut(who)
            self._wait(end)
            self.restart(who)
        elif f == "move-leader":
            live = [m for m in c.members if m.alive and not m.paused]
            to = self.follower(rng)
            via = rng.choice(live)
            rc, out = c.ctl(via, "member", "move-leader", to)
            self.note(f"move-leader to {to} asked on {via.name}: {out}")
            self._wait(end)
        elif f in ("readd-follower", "readd-leader"):
            who = c.member(self.leader_or_random(rng) if f == "readd-leader"
                           else self.follower(rng))
            via = rng.choice([m for m in c.members if m is not who and m.alive])
            removed, out = c.remove(who, via)
            self.note(f"{f}: remove {who.name} asked on {via.name}: {out}"
                      + ("" if removed else " (still a member: nothing to add back)"))
            self._wait(end)
            if removed:
                via = rng.choice([m for m in c.members if m is not who and m.alive])
                try:
                    said = c.readd(who, via)
                    self.note(f"{f}: {who.name} added back through {via.name}: {said[-1]}")
                except Exception as e:  # noqa: BLE001
                    self.errors.append(f"member {who.name} could not be added back: {e}")
                    raise
        elif f in FAULTS["clock"]:
            offs = st.params["offsets"]
            if f == "clock-skew":
                moved = list(zip(names, offs))
            else:
                who = self.leader_or_random(rng) if f == "clock-leader" else self.follower(rng)
                moved = [(who, offs[0])]
            self.note(f"{f}: wall clock of " + ", ".join(f"{n} {o}" for n, o in moved))
            for n, o in moved:
                c.member(n).set_clock(o)
            self._wait(end)
            for n, _ in moved:
                c.member(n).set_clock("+0")
            self.note(f"{f}: clocks stepped back")
        else:
            raise ValueError(f"unknown fault {f}")

    def restart(self, who):
        for n in who:
            m = self.cluster.member(n)
            if not m.alive:
                m.start()
        for n in who:
            try:
                self.cluster.member(n).wait_mounted(30)
            except Exception as e:  # noqa: BLE001
                self.errors.append(f"member {n} did not come back after a kill: {e}")
                raise
        self.note(f"restarted {' '.join(who)}")

    def _wait(self, end):
        while time.monotonic() < end and not self.stop_ev.is_set():
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))

    def heal_all(self):
        """Everything back: network healed, paused members continued, killed ones restarted."""
        c = self.cluster
        c.heal_network()
        for m in c.members:
            if m.paused:
                m.resume()
            if c.clocks:
                m.set_clock("+0")
        dead = [m.name for m in c.members if m.daemon is not None and not m.alive]
        if dead:
            self.restart(dead)
        self.note("healed")

    def stop(self):
        self.stop_ev.set()
        self.join(timeout=120)
