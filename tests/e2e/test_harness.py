"""test_harness.py: the end-to-end harness itself does what the suites rely on.

Run against testfs (tests/e2e/testfs.c), a FUSE daemon that takes raftfs's member flags and can be
told to hang a request or log an error, so every teardown path is exercised on a real mount.
"""

import os
import subprocess
import sys
import textwrap
import time

import pytest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))


def test_one_member_mounts_serves_and_unmounts(ws, testfs_bin):
    (m,) = harness.start_cluster(ws, 1, testfs_bin)
    assert harness.is_mounted(m.mountpoint)
    assert harness.mount_entry(m.mountpoint)[1] == "fuse.testfs"
    with open(os.path.join(m.mountpoint, "hello")) as f:
        assert f.read() == "hello from n1\n"
    assert os.listdir(m.mountpoint) == ["hello"]
    m.stop()
    assert m.teardown_steps == ["unmount"]
    assert not harness.is_mounted(m.mountpoint)
    assert m.proc.returncode == 0
    assert m.stderr_problems() == []


def test_three_members_get_their_own_dir_port_and_mountpoint(ws, testfs_bin):
    members = harness.start_cluster(ws, 3, testfs_bin)
    mountpoints = {m.mountpoint for m in members}
    ports = {m.argv[m.argv.index("--listen-peer") + 1] for m in members}
    assert len(mountpoints) == 3 and len(ports) == 3
    for m in members:
        # A short path: mountpoints show up in mountinfo and error messages.
        assert len(m.mountpoint) < 40
        assert os.path.isdir(m.argv[m.argv.index("--data-dir") + 1])
        with open(os.path.join(m.mountpoint, "hello")) as f:
            assert f.read() == f"hello from {m.name}\n"
        # A new process session: the daemon is not in the test's process group.
        assert os.getpgid(m.proc.pid) == m.proc.pid != os.getpgid(0)
    initial = members[0].argv[members[0].argv.index("--initial-cluster") + 1]
    assert initial.count("=127.0.0.1:") == 3


def test_daemon_exiting_before_mount_fails_fast_with_its_stderr(ws, testfs_bin):
    started = time.monotonic()
    with pytest.raises(harness.HarnessError) as e:
        # Two positional arguments: testfs refuses with a usage error and exits 2.
        harness.start_cluster(ws, 1, testfs_bin, extra=("surplus-argument",), timeout=30)
    assert time.monotonic() - started < 5
    assert "exited with status 2" in str(e.value)
    assert "usage: testfs" in str(e.value)


def test_teardown_aborts_a_connection_with_a_stuck_request(ws, testfs_bin):
    (m,) = harness.start_cluster(ws, 1, testfs_bin, extra=("--hang-on", "stuck"))
    client = subprocess.Popen(["stat", os.path.join(m.mountpoint, "stuck")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while "not answering lookup of stuck" not in m.stderr():
        assert time.monotonic() < deadline, "the stuck lookup never reached the daemon"
        time.sleep(0.01)
    assert client.poll() is None  # blocked in the kernel, waiting for the daemon
    m.stop()
    assert "abort" in m.teardown_steps
    assert client.wait(timeout=10) != 0  # released with an error, not left hanging
    assert b"connection abort" in client.stderr.read().lower()
    assert not harness.is_mounted(m.mountpoint)
    assert m.proc.returncode is not None


def test_stderr_checker_fails_on_unexpected_error_lines(ws, testfs_bin):
    (m,) = harness.start_cluster(ws, 1, testfs_bin, extra=("--log-error-on", "bad"))
    assert not os.path.exists(os.path.join(m.mountpoint, "bad"))
    m.stop()
    problems = m.stderr_problems()
    assert problems == ["ERROR n1: lookup of bad failed on purpose"]
    m.expect_error(r"lookup of bad failed on purpose")
    assert m.stderr_problems() == []


def test_stderr_checker_catches_sanitizer_reports(ws):
    d = harness.Daemon("fake", ["true"], ws.path("fake"), ws.root)
    with open(d.stderr_path, "w") as f:
        f.write("INFO n1: mounted /tmp/x\n"
                "==4242==ERROR: AddressSanitizer: heap-use-after-free on address 0x6020\n"
                "fs/fuse/ops.c:10:5: runtime error: signed integer overflow\n"
                "WARN n1: peer n2 unreachable\n")
    assert d.stderr_problems() == [
        "==4242==ERROR: AddressSanitizer: heap-use-after-free on address 0x6020",
        "fs/fuse/ops.c:10:5: runtime error: signed integer overflow",
    ]


def test_hard_timeout_aborts_a_stuck_test_and_cleans_up(ws, testfs_bin):
    # A test stuck in a FUSE request, run by an inner pytest with these same fixtures.
    inner = ws.path("inner")
    os.makedirs(inner)
    with open(os.path.join(inner, "conftest.py"), "w") as f:
        f.write(textwrap.dedent(f"""
            import importlib.util, sys
            sys.path.insert(0, {HERE!r})
            spec = importlib.util.spec_from_file_location("e2e_conftest", {HERE!r} + "/conftest.py")
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            globals().update({{k: v for k, v in vars(mod).items() if not k.startswith("__")}})
            """))
    with open(os.path.join(inner, "test_stuck.py"), "w") as f:
        f.write(textwrap.dedent("""
            import os, pytest, harness

            @pytest.mark.timeout_s(3)
            def test_stuck(ws, testfs_bin):
                (m,) = harness.start_cluster(ws, 1, testfs_bin, extra=("--hang-on", "stuck"))
                with open(os.environ["INNER_MOUNTPOINT_FILE"], "w") as f:
                    f.write(m.mountpoint)
                os.stat(os.path.join(m.mountpoint, "stuck"))
            """))
    record = ws.path("inner-mountpoint")
    env = dict(os.environ, RAFTFS_TESTFS_BIN=testfs_bin, INNER_MOUNTPOINT_FILE=record)
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--rootdir", inner, inner], env=env, capture_output=True, text=True,
                       timeout=60)
    assert time.monotonic() - started < 30
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 failed" in r.stdout or "1 error" in r.stdout
    assert "exceeded its hard timeout" in r.stdout
    with open(record) as f:
        assert not harness.is_mounted(f.read())
