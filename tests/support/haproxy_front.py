"""Debian's HAProxy in TCP mode in front of sidestep, for the PROXY protocol tests (Python 3
standard library and sst.py beside it).

    exe = haproxy_front.find()                # the binary, or unittest.SkipTest
    ha = HAProxyFront(CFG, sidestep_port)     # CFG: a config text with {front} and {port}
    ... ha.front ...                          # the loopback port HAProxy listens on
    ha.stop()                                 # by PID: the process it started

HAProxy runs in the foreground (-db) from a temporary directory removed at stop; start waits,
bounded, until its port answers.
"""

import os
import shutil
import subprocess
import tempfile
import unittest

import sst


def find():
    """The haproxy binary; unittest.SkipTest when it is not installed."""
    exe = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if exe is None:
        raise unittest.SkipTest("haproxy is not installed")
    return exe


class HAProxyFront:
    def __init__(self, cfg, port):
        exe = find()
        self.dir = tempfile.mkdtemp(prefix="sidestep-haproxy-")
        self.front = sst.free_port()
        path = os.path.join(self.dir, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(cfg.format(front=self.front, port=port))
        self.proc = subprocess.Popen([exe, "-db", "-f", path], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            sst.wait_until(lambda: sst.port_open(self.front), 10.0, what="haproxy listening")
        except TimeoutError:
            self.stop()
            raise

    def stop(self):
        self.proc.terminate()  # by PID: the process this object started
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
