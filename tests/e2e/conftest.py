"""conftest.py: pytest fixtures for raftfs end-to-end tests on real mounts.

Fixtures:
  ws          a Workspace (harness.py) whose daemons are always unmounted and reaped after the test;
              a sanitizer report or an unexpected ERROR line on any daemon's stderr fails the test
  cluster     cluster(n, extra=(), binary=None) starts n members n1..nN (raftfs mount -f) and waits
              until each mount is live
  raftfs_bin  path of the raftfs binary under test (RAFTFS_BIN, set by meson)
  testfs_bin  path of the harness's own test daemon (RAFTFS_TESTFS_BIN, set by meson)

Every test has a hard timeout (RAFTFS_E2E_TIMEOUT seconds, default 120, or
@pytest.mark.timeout_s(N)): when it expires, a watchdog aborts the test's FUSE connections and kills
its daemons, which unblocks whatever was stuck, and the test fails. Tests that need FUSE are skipped
only where /dev/fuse does not exist.
"""

import os
import signal
import threading

import pytest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


DAEMON_LOG_TAIL = 30


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout_s(n): hard timeout of this test in seconds")


def pytest_collection_modifyitems(config, items):
    if os.path.exists("/dev/fuse"):
        return
    skip = pytest.mark.skip(reason="/dev/fuse does not exist on this machine")
    for item in items:
        if "ws" in item.fixturenames or "cluster" in item.fixturenames:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        env = " ".join(f"{k}={os.environ[k]}" for k in ("RAFTFS_BIN", "RAFTFS_TESTFS_BIN")
                       if k in os.environ)
        report.sections.append(
            ("reproduce", f"{env} /usr/bin/python3 -m pytest -v '{item.nodeid}'"))
        # what the daemons said last: a failure seen once in CI is diagnosed from the report
        for w in list(_workspaces):
            for d in w.daemons:
                tail = d.stderr().splitlines()[-DAEMON_LOG_TAIL:]
                if tail:
                    report.sections.append((f"daemon {d.name}: last {len(tail)} lines of stderr",
                                            "\n".join(tail)))


def _binary(var, default):
    path = os.environ.get(var) or os.path.join(ROOT, default)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{var}: {path} is not an executable (build first, or set {var})")
    return path


@pytest.fixture
def raftfs_bin():
    return _binary("RAFTFS_BIN", "build/fs/raftfs")


@pytest.fixture
def testfs_bin():
    return _binary("RAFTFS_TESTFS_BIN", "build/tests/e2e/testfs")


_workspaces = []  # of the running test, for the watchdog


class HardTimeout(Exception):
    """Raised in the test's thread when its hard timeout expires."""


_in_test_body = []  # non-empty while a test function itself runs (not pytest's own code)


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    _in_test_body.append(True)
    try:
        yield
    finally:
        _in_test_body.clear()


def _raise_timeout(signum, frame):
    # Raise only inside the test body: an exception thrown into pytest's own reporting code
    # would garble the result. Outside it, the watchdog fixture fails the test afterwards.
    if _in_test_body:
        raise HardTimeout("test exceeded its hard timeout; its mounts were aborted")


@pytest.fixture(autouse=True)
def _watchdog(request):
    marker = request.node.get_closest_marker("timeout_s")
    seconds = marker.args[0] if marker else float(os.environ.get("RAFTFS_E2E_TIMEOUT", "120"))
    main = threading.main_thread().ident
    fired = []

    def expire():
        # First unblock whatever waits on a mount, then interrupt the test itself.
        fired.append(True)
        for w in list(_workspaces):
            w.abort_all()
        signal.pthread_kill(main, signal.SIGALRM)

    old = signal.signal(signal.SIGALRM, _raise_timeout)
    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        signal.signal(signal.SIGALRM, old)
    if fired:
        pytest.fail(f"test exceeded its hard timeout of {seconds}s; its mounts were aborted",
                    pytrace=False)


@pytest.fixture
def ws():
    w = harness.Workspace()
    _workspaces.append(w)
    try:
        yield w
    finally:
        # listed until closed: a teardown stuck on a mount is the watchdog's to abort too (it
        # found nothing to abort once, and a CI run hung in a test's teardown)
        try:
            problems = w.close()
        finally:
            _workspaces.remove(w)
        if problems:
            lines = [f"{name}: {line}" for name, found in problems.items() for line in found]
            pytest.fail("daemon stderr shows problems:\n" + "\n".join(lines), pytrace=False)


@pytest.fixture
def cluster(ws, raftfs_bin):
    def start(n=1, extra=(), binary=None, wait=True, timeout=20.0, env=None):
        return harness.start_cluster(ws, n, binary or raftfs_bin, extra, wait, timeout, env)
    return start
