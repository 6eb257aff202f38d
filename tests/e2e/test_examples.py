"""test_examples.py: an unmodified program (Debian's nginx) reads its configuration and content
from raftfs mounts, and sees every change made on another member (what examples/nginx.sh shows).
"""

import os
import shutil
import subprocess
import time
import urllib.request

import harness


def get(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
        return r.read().decode(), r.headers.get("X-Config-Version")


def wait_for(pred, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if pred():
                return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def test_nginx_reads_its_config_from_the_mount(cluster, ws):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.access(nginx, os.X_OK), "scripts/setup installs nginx-light"
    n1, n2, n3 = cluster(3)
    os.chmod(ws.root, 0o755)  # nginx's workers run as nobody and must reach the mounts
    port, run = harness.free_port(), ws.path("nginx-run")
    os.makedirs(os.path.join(run, "logs"))
    os.makedirs(os.path.join(n1.mountpoint, "nginx"))
    os.makedirs(os.path.join(n1.mountpoint, "www"))
    conf = f"""daemon off;
pid {run}/nginx.pid;
error_log {run}/logs/error.log;
events {{}}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{port};
        root {n3.mountpoint}/www;
        add_header X-Config-Version 1;
    }}
}}
"""
    with open(os.path.join(n1.mountpoint, "nginx/nginx.conf"), "w") as f:
        f.write(conf)
    with open(os.path.join(n1.mountpoint, "www/index.html"), "w") as f:
        f.write("version 1\n")
    conf_on_n2 = os.path.join(n2.mountpoint, "nginx/nginx.conf")
    assert wait_for(lambda: os.path.exists(conf_on_n2), 2)
    cmd = [nginx, "-p", run, "-c", conf_on_n2]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert wait_for(lambda: get(port) == ("version 1\n", "1"), 10), \
            open(os.path.join(run, "logs/error.log")).read()
        with open(os.path.join(n1.mountpoint, "www/index.html"), "w") as f:
            f.write("version 2\n")
        assert wait_for(lambda: get(port)[0] == "version 2\n", 2)
        with open(os.path.join(n1.mountpoint, "nginx/nginx.conf"), "w") as f:
            f.write(conf.replace("X-Config-Version 1", "X-Config-Version 2"))
        time.sleep(0.2)
        subprocess.run(cmd + ["-s", "reload"], check=True, timeout=30,
                       capture_output=True)
        assert wait_for(lambda: get(port)[1] == "2", 5)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
