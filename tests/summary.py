"""summary.py TESTLOG_JSON: prints the closing `N passed, M failed` line of a meson test run.

Counts test cases, not executables: each check.h binary and each pytest run prints its own counts,
which are added up; a test that ended without such a line (a crash, a timeout) counts as one
failure. Exits 1 when anything failed or nothing ran.
"""

import json
import re
import sys

CHECK_LINE = re.compile(r"^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$", re.M)
PYTEST_LINE = re.compile(r"^=+ (.*) in [\d.]+s", re.M)


def counts(test):
    out = test.get("stdout") or ""
    m = CHECK_LINE.findall(out)
    if m:
        p, f, s = m[-1]
        return int(p), int(f), int(s or 0)
    m = PYTEST_LINE.findall(out)
    if m:
        words = dict((k, int(v)) for v, k in re.findall(r"(\d+) (\w+)", m[-1]))
        return (words.get("passed", 0), words.get("failed", 0) + words.get("error", 0)
                + words.get("errors", 0), words.get("skipped", 0))
    return (1, 0, 0) if test["result"] == "OK" else (0, 1, 0)


def main():
    passed = failed = skipped = 0
    with open(sys.argv[1]) as f:
        for line in f:
            test = json.loads(line)
            p, fl, s = counts(test)
            if test["result"] not in ("OK", "SKIP") and fl == 0:
                fl = 1  # the runner said pass but the process failed: a crash, a leak, a timeout
            passed, failed, skipped = passed + p, failed + fl, skipped + s
    tail = f", {skipped} skipped" if skipped else ""
    print(f"{passed} passed, {failed} failed{tail}")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
