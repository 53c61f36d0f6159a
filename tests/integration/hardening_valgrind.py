"""Leak check: sidestep under valgrind memcheck for a short scripted session.

Registered by tests/CMakeLists.txt as ctest test `valgrind.session` (label valgrind) when
valgrind is installed and the build is not instrumented (ASan and memcheck do not mix). The
session covers the main paths: proxying (keep-alive, chunked both ways, a large body, a
backend error), local answers (400, 413, 414, 431), a region going down and the 307 that
follows, a config reload (SIGHUP) and a graceful stop (SIGTERM). memcheck runs with
--leak-check=full --error-exitcode=1: any invalid access or leak makes the exit code non-zero,
which fails the test along with the process's own exit status.
"""

import os
import shutil
import sys
import unittest

import sst
from sst import Conn, Sidestep, Stub

VALGRIND = os.environ.get("SST_VALGRIND") or shutil.which("valgrind")
SLOW = 20.0  # memcheck runs the proxy 10-50 times slower


def config(east, west, body="1m"):
    health = {"interval": "300ms", "timeout": "250ms", "rise": 1, "fall": 1, "jitter": "0ms"}
    return {
        "workers": 2,
        "local_region": "us-east",
        "listen": [{"address": "127.0.0.1:0"}],
        "regions": [
            {"name": "us-east", "url": "http://us-east.example", "backends": [east.addr],
             "health": health, "failback_delay": "0ms"},
            {"name": "eu-west", "url": "http://eu-west.example", "backends": [west.addr],
             "health": health},
        ],
        "routes": [{"name": "default", "primary": "us-east", "failover": ["eu-west"]}],
        "limits": {"body": body, "request_line": "1k", "header_field": "1k"},
        "log": {"access": "stderr"},
    }


@unittest.skipUnless(VALGRIND, "valgrind is not installed")
class MemcheckSession(unittest.TestCase):
    def test_session_is_clean(self):
        east, west = Stub("us-east"), Stub("eu-west")
        argv = [VALGRIND, "--leak-check=full", "--show-leak-kinds=definite,indirect",
                "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=1",
                "--trace-children=no", "--num-callers=30", sst.SST_BIN]
        s = Sidestep(config(east, west), binary=argv, ready_timeout=60)
        try:
            t = SLOW
            with Conn(s.port, timeout=t) as c:
                for i in range(3):
                    c.request("GET", "/ka/%d" % i)
                    self.assertEqual(c.recv_response().status, 200)
                c.request("POST", "/chunked", headers={"Transfer-Encoding": "chunked"},
                          body=sst.chunked([b"a" * 1000, b"b" * 70000],
                                           trailers=[("X-T", "1")]))
                self.assertEqual(c.recv_response().echo().body_bytes, 71000)
                c.request("GET", "/", headers={"X-Stub-Chunked": "1", "X-Stub-Size": "200000"})
                self.assertEqual(len(c.recv_response().body), 200000)
                c.request("PUT", "/big", body=sst.pattern(500000))
                self.assertEqual(c.recv_response().echo().body_bytes, 500000)
                c.request("GET", "/", headers={"X-Stub-Fail": "garbage"})
                self.assertEqual(c.recv_response().status, 502)
            for data, status in (
                    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),
                    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999\r\n\r\n", 413),
                    (b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
                    (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 2000 + b"\r\n\r\n", 431)):
                with Conn(s.port, timeout=t) as c:
                    c.send(data)
                    self.assertEqual(c.recv_response().status, status)
            # a client that vanishes mid-body
            c = Conn(s.port, timeout=t)
            c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nabc")
            c.close()
            # the primary goes down: redirect
            east.kill()
            sst.wait_until(lambda: sst.http(s.port, "GET", "/r", timeout=t).status == 307,
                           timeout=SLOW, what="the 307 once us-east is down")
            # reload with a smaller body limit, then check it applies
            s.write_config(config(east, west, body="10k"))
            s.reload()
            sst.wait_until(
                lambda: sst.http(s.port, "POST", "/", body=b"x" * 20000, timeout=t).status == 413,
                timeout=SLOW, what="the reloaded body limit")
            code = s.stop(timeout=SLOW * 3, check=False)
            self.assertEqual(code, 0, "valgrind/sidestep exit %r:\n%s" % (code, s.stderr_text()))
            text = s.stderr_text()
            self.assertIn("ERROR SUMMARY: 0 errors", text)  # memcheck really ran, and is clean
            self.assertNotRegex(text, r"(definitely|indirectly) lost: [1-9]")
        finally:
            if s.running():
                s.kill()
            west.stop()
            if east.running():
                east.stop()


if __name__ == "__main__":
    if not sst.SST_BIN:
        sys.exit("SST_BIN is not set (run through ctest)")
    unittest.main(verbosity=2)
