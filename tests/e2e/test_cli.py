"""test_cli.py: the raftfs binary's exit statuses and streams, as a user's shell sees them."""

import subprocess


def run(binary, *args):
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=30)


def test_version_and_help(raftfs_bin):
    r = run(raftfs_bin, "--version")
    assert r.returncode == 0 and r.stdout.startswith("raftfs ") and r.stderr == ""
    r = run(raftfs_bin, "--help")
    assert r.returncode == 0 and r.stderr == ""
    for sub in ("mount", "umount", "status", "member", "lease", "watch", "get"):
        assert f"\n  {sub} " in r.stdout


def test_usage_errors_exit_2_with_message_on_stderr(raftfs_bin):
    for args, message in (((), "usage: raftfs"),
                          (("nosuch",), "unknown subcommand 'nosuch'"),
                          (("--nosuch",), "unknown option '--nosuch'")):
        r = run(raftfs_bin, *args)
        assert r.returncode == 2, args
        assert message in r.stderr
        assert r.stdout == ""
