"""The request path allocates nothing per request once warm (performance issue: "the 307 path
does no heap allocation per request"). Counted with valgrind's memcheck heap summary: the same
process shape serving N and 3N keep-alive requests must report the same number of allocations.
Skipped when valgrind is not installed."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import sst
from sst import Stub

VALGRIND = shutil.which("valgrind")


def serve(port, n, target="/x"):
    with socket.create_connection(("127.0.0.1", port), timeout=sst.scaled(30)) as s:
        f = s.makefile("rb")
        for _ in range(n):
            s.sendall(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: a\r\n\r\n")
            length = 0
            while True:
                line = f.readline()
                if not line:
                    raise AssertionError("connection closed")
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                if line == b"\r\n":
                    break
            f.read(length)


def heap_allocs(config_text, requests):
    """Runs sidestep under memcheck, serves `requests` on one connection, returns the number of
    allocations valgrind reports at exit."""
    d = tempfile.mkdtemp(prefix="sst-alloc-")
    try:
        cfg = os.path.join(d, "c.yaml")
        ready = os.path.join(d, "ready.json")
        with open(cfg, "w") as f:
            f.write(config_text)
        p = subprocess.Popen([VALGRIND, "--tool=memcheck", "--leak-check=no",
                              os.environ["SST_BIN"], "-c", cfg, "--ready-file", ready],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            sst.wait_until(lambda: os.path.exists(ready) or p.poll() is not None, timeout=60,
                           what="ready file")
            if p.poll() is not None:
                raise AssertionError(p.stderr.read().decode(errors="replace"))
            with open(ready) as f:
                port = int(__import__("json").load(f)["listen"][0].rsplit(":", 1)[1])
            serve(port, requests)
        finally:
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=60)
        m = re.search(rb"total heap usage: ([\d,]+) allocs", err)
        if m is None:
            raise AssertionError("no heap summary:\n" + err.decode(errors="replace"))
        return int(m.group(1).replace(b",", b""))
    finally:
        shutil.rmtree(d, ignore_errors=True)


@unittest.skipIf(VALGRIND is None, "valgrind is not installed")
@unittest.skipIf(sst.SANITIZE, "valgrind cannot run an AddressSanitizer binary")
class Allocations(unittest.TestCase):
    def config(self, backend, primary_up):
        return sst.to_yaml({
            "workers": 1,
            "listen": [{"address": "127.0.0.1:0"}],
            "local_region": "us-east",
            "regions": [
                {"name": "us-east", "url": "http://us-east.example", "backends": [backend],
                 "health": {"enabled": False, "initial": "up" if primary_up else "down"}},
                {"name": "eu-west", "url": "http://eu-west.example",
                 "backends": ["127.0.0.1:2"], "health": {"enabled": False, "initial": "up"}},
            ],
            "log": {"access": "off"},
        })

    def test_redirect_path_allocates_nothing_per_request(self):
        cfg = self.config("127.0.0.1:1", primary_up=False)
        self.assertEqual(heap_allocs(cfg, 200), heap_allocs(cfg, 600))

    def test_proxy_path_allocates_nothing_per_request(self):
        with Stub("us-east") as stub:
            cfg = self.config(stub.addr, primary_up=True)
            self.assertEqual(heap_allocs(cfg, 200), heap_allocs(cfg, 600))


if __name__ == "__main__":
    unittest.main(verbosity=2)
