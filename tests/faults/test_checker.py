"""Unit tests of checker.py with small hand-made histories: each must pass or must fail. No root,
no FUSE. Run: /usr/bin/python3 -m unittest -v tests/faults/test_checker.py"""

import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checker  # noqa: E402
import leases  # noqa: E402
from checker import Op, linearizable, minimal_failing  # noqa: E402

_ids = iter(range(1, 1 << 30))


def w(call, ret, v, p=0, m="n1", status="ok", key="k", how="inplace"):
    return Op(next(_ids), p, m, key, "write", v, call, ret, status, how=how)


def r(call, ret, v, p=1, m="n1", status="ok", key="k"):
    return Op(next(_ids), p, m, key, "read", v, call, ret, status)


def t(call, ret, p=0, m="n1", status="ok", key="k"):
    return Op(next(_ids), p, m, key, "trunc", "", call, ret, status)


def c(call, ret, v, status="ok", error=None, p=0, key="c"):
    return Op(next(_ids), p, "n1", key, "create", v, call, ret, status, error)


class Linearizable(unittest.TestCase):
    def test_sequential_history_passes(self):
        h = [w(0, 1, "a"), r(2, 3, "a"), w(4, 5, "b"), r(6, 7, "b")]
        self.assertTrue(linearizable(h, "0"))

    def test_initial_value_read(self):
        self.assertTrue(linearizable([r(0, 1, "0")], "0"))
        self.assertFalse(linearizable([r(0, 1, "x")], "0"))

    def test_stale_read_after_write_returned_fails(self):
        h = [w(0, 1, "a"), w(2, 3, "b"), r(4, 5, "a")]
        self.assertFalse(linearizable(h, "0"))

    def test_concurrent_read_may_see_either(self):
        self.assertTrue(linearizable([w(0, 10, "a"), r(1, 2, "0")], "0"))
        self.assertTrue(linearizable([w(0, 10, "a"), r(1, 2, "a")], "0"))

    def test_read_going_back_fails(self):
        # both reads overlap the write, but once one saw the new value a later one may not go back
        h = [w(0, 10, "a"), r(1, 2, "a", p=1), r(3, 4, "0", p=2)]
        self.assertFalse(linearizable(h, "0"))

    def test_never_written_value_fails(self):
        self.assertFalse(linearizable([w(0, 1, "a"), r(2, 3, "zz")], "0"))

    def test_info_write_may_happen_late(self):
        # an indeterminate write may take effect long after its caller gave up
        h = [w(0, 1, "a", status="info"), r(2, 3, "0"), r(4, 5, "a")]
        self.assertTrue(linearizable(h, "0"))

    def test_info_write_may_never_happen(self):
        h = [w(0, 1, "a", status="info"), r(2, 3, "0"), r(10, 11, "0")]
        self.assertTrue(linearizable(h, "0"))

    def test_info_write_cannot_happen_before_its_call(self):
        h = [r(0, 1, "a"), w(2, 3, "a", status="info")]
        self.assertFalse(linearizable(h, "0"))

    def test_info_write_cannot_happen_twice(self):
        h = [w(0, 1, "a", status="info"), r(2, 3, "a"), w(4, 5, "b"), r(6, 7, "a")]
        self.assertFalse(linearizable(h, "0"))

    def test_failed_read_says_nothing(self):
        h = [w(0, 1, "a"), r(2, 3, "0", status="fail")]
        self.assertTrue(linearizable(h, "0"))

    def test_lost_acknowledged_write_fails(self):
        # the final reads after all ops returned must see the last acknowledged write
        h = [w(0, 1, "a"), w(2, 3, "b"), r(10, 11, "a", m="n2"), r(10, 11, "a", m="n3")]
        self.assertFalse(linearizable(h, "0"))

    def test_truncate_then_write(self):
        h = [t(0, 1), w(1, 3, "a"), r(2, 2.5, ""), r(4, 5, "a")]
        self.assertTrue(linearizable(h, "0"))
        h = [t(0, 1), w(1.5, 3, "a"), r(4, 5, "")]
        self.assertFalse(linearizable(h, "0"))
        # the truncate may be folded into the write's commit: never seen
        self.assertTrue(linearizable([t(0, 1), w(0, 3, "a"), r(0.5, 0.7, "0"), r(4, 5, "a")], "0"))
        # but it cannot take effect after it returned
        self.assertFalse(linearizable([r(0, 0.1, "0"), t(0.2, 1), r(2, 3, "")], "0") and
                         linearizable([t(0, 1), r(2, 3, "0"), r(4, 5, "")], "0"))

    def test_compare_and_create(self):
        self.assertTrue(linearizable([c(0, 1, "p1"), c(2, 3, "p2", "fail", "EEXIST")], None))
        self.assertFalse(linearizable([c(0, 1, "p1"), c(2, 3, "p2")], None))  # two winners
        # an EEXIST before anyone could have created it
        self.assertFalse(linearizable([c(0, 1, "p2", "fail", "EEXIST"), c(2, 3, "p1")], None))
        # an indeterminate create explains a later EEXIST
        self.assertTrue(linearizable([c(0, 1, "p1", "info"), c(2, 3, "p2", "fail", "EEXIST")],
                                     None))
        # and may have lost: a later create can still win
        self.assertTrue(linearizable([c(0, 1, "p1", "info"), c(2, 3, "p2")], None))

    def test_many_concurrent_ops_are_fast_with_memoization(self):
        rnd = random.Random(7)
        h = []
        val = "0"
        clock = 0
        # a real register driven sequentially, with every op's interval widened to overlap
        for i in range(400):
            clock += 1
            if rnd.random() < 0.5:
                val = f"v{i}"
                h.append(w(clock - rnd.random() * 5, clock + rnd.random() * 5, val))
            else:
                h.append(r(clock - rnd.random() * 5, clock + rnd.random() * 5, val))
        self.assertTrue(linearizable(h, "0", budget_s=30))
        h.append(r(clock + 10, clock + 11, "v1"))  # a stale read at the very end
        self.assertFalse(linearizable(h, "0", budget_s=30))

    def test_minimal_failing_keeps_the_anomaly_small(self):
        h = [w(i * 10, i * 10 + 1, f"v{i}") for i in range(30)]
        h += [r(i * 10 + 2, i * 10 + 3, f"v{i}") for i in range(30)]
        h.append(r(1000, 1001, "v3"))
        h += [w(2000, 2001, "later")]
        m = minimal_failing(h, "0")
        self.assertIsNotNone(m)
        self.assertLessEqual(len(m), 4)
        self.assertIn("v3", [o.value for o in m if o.f == "read"])
        self.assertFalse(linearizable(m, "0"))
        self.assertIsNone(minimal_failing(h[:60], "0"))


class Values(unittest.TestCase):
    def test_values_parse_and_torn_ones_do_not(self):
        v = checker.make_value(3, 17, 100)
        self.assertTrue(checker.value_ok(v))
        self.assertEqual(checker.canon(v), "<3:17:100>")
        self.assertTrue(checker.value_ok(checker.canon(v)))
        self.assertFalse(checker.value_ok(checker.canon(v[:-1])))
        self.assertTrue(checker.value_ok(""))
        self.assertFalse(checker.value_ok(v[:50]))
        other = checker.make_value(4, 1, 100)
        self.assertFalse(checker.value_ok(v[:60] + other[60:]))

    def test_value_anomalies(self):
        revs = {("k", "a"): 2}
        h = [r(0, 1, checker.make_value(1, 1, 5)), r(0, 1, "<1:1:5:aa>")]
        kinds = [a.kind for a in checker.value_anomalies(h, revs, {"k": "init"})]
        self.assertEqual(kinds, ["never-written", "torn-read"])


class Sequential(unittest.TestCase):
    revs = {("k", "a"): 2, ("k", "b"): 4, ("k", "c"): 6}
    empties = {"k": [3, 5]}
    inits = {"k": "0"}

    def check(self, h):
        return checker.sequential_per_member(h, self.revs, self.empties, self.inits)

    def test_monotonic_reads_pass(self):
        h = [r(0, 1, "0"), r(2, 3, "a"), r(4, 5, ""), r(6, 7, "b"), r(8, 9, "b"),
             r(1, 2, "0", m="n2"), r(10, 11, "a", m="n2")]
        self.assertEqual(self.check(h), [])

    def test_other_members_may_lag(self):
        h = [r(0, 1, "c", m="n1"), r(2, 3, "a", m="n2")]
        self.assertEqual(self.check(h), [])

    def test_stale_read_on_one_member_fails(self):
        h = [r(0, 1, "b"), r(2, 3, "a")]
        a = self.check(h)
        self.assertEqual([x.kind for x in a], ["stale-read"])

    def test_read_older_than_own_write_fails(self):
        h = [w(0, 1, "b"), r(2, 3, "a")]
        self.assertEqual([x.kind for x in self.check(h)], ["stale-read"])

    def test_empty_read_is_judged_by_its_possible_revisions(self):
        self.assertEqual(self.check([r(0, 1, "b"), r(2, 3, "")]), [])  # rev 5 is empty
        self.assertEqual([x.kind for x in self.check([r(0, 1, "c"), r(2, 3, "")])],
                         ["stale-read"])

    def test_writes_out_of_real_time_order_fail(self):
        h = [w(0, 1, "b", m="n1"), w(2, 3, "a", m="n2")]
        self.assertEqual([x.kind for x in self.check(h)], ["write-order"])

    def test_lost_ack(self):
        h = [w(0, 1, "zz"), w(0, 1, "b")]
        self.assertEqual([x.kind for x in checker.lost_acks(h, self.revs)], ["lost-ack"])
        # an in-place write overtaken by a rename of the file while it was open is dropped
        h = [w(0, 5, "zz"), w(1, 2, "b", how="rename")]
        self.assertEqual(checker.lost_acks(h, self.revs), [])
        h = [t(0, 1, p=7), w(1.5, 5, "zz", p=7), w(0.5, 0.8, "b", how="rename", p=8)]
        self.assertEqual(checker.lost_acks(h, self.revs), [])
        # a rename that returned before the open began excuses nothing on the same member...
        h = [t(2, 3, p=7), w(3.5, 5, "zz", p=7), w(0.5, 0.8, "b", how="rename", p=8)]
        self.assertEqual(len(checker.lost_acks(h, self.revs, stale_ns=10)), 1)
        # ...but may not have been applied yet by another member (default mounts)
        h = [t(2, 3, p=7), w(3.5, 5, "zz", p=7), w(0.5, 0.8, "b", how="rename", p=8, m="n2")]
        self.assertEqual(checker.lost_acks(h, self.revs, stale_ns=10), [])
        self.assertEqual(len(checker.lost_acks(h, self.revs, stale_ns=0)), 1)
        # ...unless the writer's member had shown that rename's value before the open
        h.append(r(1, 1.5, "b", p=9, m="n1"))
        self.assertEqual(len(checker.lost_acks(h, self.revs, stale_ns=10)), 1)


def lk(kind, member, call_s, ret_s, what):
    x = leases.Look(kind, member, int(call_s * 1e9))
    x.ret, x.what = int(ret_s * 1e9), what
    return x


def epoch(*looks, ttl=5):
    ep = leases.Epoch(1)
    ep.id, ep.ttl = 7, ttl
    ep.looks = list(looks)
    return ep


class Leases(unittest.TestCase):
    def test_expiry_after_the_ttl_of_the_last_renewal_passes(self):
        ep = epoch(lk("grant", "n1", 0, 0.1, "ok"), lk("look", "n2", 0.2, 0.3, "present"),
                   lk("renew", "n3", 1.0, 1.1, "ok"), lk("look", "n2", 6.05, 6.1, "absent"))
        self.assertEqual(leases.lease_anomalies([ep], 0), [])

    def test_absent_before_the_ttl_of_a_renewal_fails(self):
        ep = epoch(lk("grant", "n1", 0, 0.1, "ok"), lk("look", "n2", 0.2, 0.3, "present"),
                   lk("renew", "n3", 1.0, 1.1, "ok"), lk("look", "n2", 5.5, 5.9, "absent"))
        out = leases.lease_anomalies([ep], 0)
        self.assertEqual(len(out), 1)
        self.assertTrue(out[0].startswith("ANOMALY lease-early: lease 7"), out[0])

    def test_a_renewal_answered_not_found_too_soon_fails(self):
        ep = epoch(lk("grant", "n1", 0, 0.1, "ok"), lk("renew", "n2", 2.0, 2.1, "gone"))
        self.assertEqual(len(leases.lease_anomalies([ep], 0)), 1)

    def test_absent_on_a_member_that_never_showed_it_is_no_proof(self):
        # a lagging member need not have applied the put yet
        ep = epoch(lk("grant", "n1", 0, 0.1, "ok"), lk("look", "n3", 0.5, 0.6, "absent"),
                   lk("look", "n2", 0.5, 0.6, "present"), lk("look", "n3", 0.7, 0.8, "absent"))
        self.assertEqual(leases.lease_anomalies([ep], 0), [])

    def test_a_failed_renewal_holds_nothing(self):
        ep = epoch(lk("grant", "n1", 0, 0.1, "ok"), lk("look", "n2", 0.2, 0.3, "present"),
                   lk("renew", "n3", 3.0, 9.0, "error"), lk("look", "n2", 5.2, 5.3, "absent"))
        self.assertEqual(leases.lease_anomalies([ep], 0), [])


class Watches(unittest.TestCase):
    ref = [{"revision": 2, "type": "PUT", "key": "/a"},
           {"revision": 3, "type": "DELETE", "key": "/t"},
           {"revision": 3, "type": "PUT", "key": "/a"},
           {"revision": 4, "type": "PUT", "key": "/b"}]

    def test_exact_slice_passes(self):
        self.assertEqual(checker.watch_anomalies("w", self.ref[1:], self.ref), [])
        self.assertEqual(checker.watch_anomalies("w", self.ref[1:], self.ref, start=3), [])

    def test_session_cut_by_a_kill_may_end_inside_a_revision(self):
        got = self.ref[:2]  # revision 3 printed half: its member died
        self.assertTrue(checker.watch_anomalies("w", got, self.ref))
        self.assertEqual(checker.watch_anomalies("w", got, self.ref, cut=True), [])
        # but nothing before its last revision may be missing
        self.assertTrue(checker.watch_anomalies("w", [self.ref[0], self.ref[2]], self.ref,
                                                cut=True))

    def test_gap_at_the_start_fails(self):
        self.assertTrue(checker.watch_anomalies("w", self.ref[1:], self.ref, start=2))

    def test_gap_duplicate_and_order_fail(self):
        self.assertTrue(checker.watch_anomalies("w", [self.ref[0], self.ref[3]], self.ref))
        self.assertTrue(checker.watch_anomalies("w", self.ref + [self.ref[3]], self.ref))
        self.assertTrue(checker.watch_anomalies("w", [self.ref[3], self.ref[0]], self.ref))
        # half a rename
        self.assertTrue(checker.watch_anomalies("w", [self.ref[0], self.ref[2], self.ref[3]],
                                                self.ref))


if __name__ == "__main__":
    unittest.main()
