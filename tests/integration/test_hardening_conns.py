"""Hardening: connection counts and file descriptors.

- idle keep-alive connections never lock new clients out: at limits.connections the oldest
  idle connection is closed to make room (10,000 idle connections in normal builds; 2,000
  under the sanitizers, where the behaviour is the same and each connection costs more);
- past the limit with nothing idle to reclaim, a new client gets 503 with Retry-After at once
  rather than a hang, and is served again as soon as room returns;
- running out of file descriptors (RLIMIT_NOFILE lowered to 256 on the running sidestep with
  prlimit) never crashes the process, does not spin the CPU, and service resumes when the
  descriptors come back.
"""

import os
import resource
import socket
import subprocess
import time
import unittest

import sst
from sst import Conn, Sidestep, Stub, scaled

IDLE = 2000 if sst.SANITIZE else 10000


def config(stub, limits=None, timeouts=None):
    cfg = {
        "workers": 1,
        "listen": [{"address": "127.0.0.1:0"}],
        "regions": [{"name": "us-east", "url": "http://us-east.example",
                     "backends": [stub.addr], "health": {"enabled": False, "initial": "up"}}],
        "timeouts": dict({"linger": "200ms"}, **(timeouts or {})),
        "log": {"access": "off"},
    }
    if limits:
        cfg["limits"] = limits
    return cfg


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def keep_alive_requests(port, n, batch=256):
    """n connections, each after one request answered with keep-alive: idle connections.
    Requests go in batches below limits.upstream_connections (1024 per backend and worker,
    past which sidestep answers 503 instead of queueing)."""
    socks = []
    req = b"GET /idle HTTP/1.1\r\nHost: a\r\n\r\n"
    for first in range(0, n, batch):
        group = []
        for _ in range(min(batch, n - first)):
            s = socket.create_connection(("127.0.0.1", port), timeout=scaled(10))
            s.sendall(req)
            group.append(s)
        for s in group:
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    raise AssertionError("an idle-to-be connection was closed early")
                buf += chunk
            assert buf.startswith(b"HTTP/1.1 200 "), buf[:60]
        socks += group
    return socks


def is_closed(sock):
    sock.setblocking(False)
    try:
        data = sock.recv(65536, socket.MSG_PEEK)
        return data == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)


class IdleConnections(unittest.TestCase):
    def setUp(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = IDLE + 200
        if soft < need:
            if hard != resource.RLIM_INFINITY and hard < need:
                self.skipTest("RLIMIT_NOFILE %d is below %d" % (hard, need))
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        self.stub = Stub("us-east")
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        self.stub.stop()

    def test_idle_keep_alive_connections_do_not_lock_new_clients_out(self):
        with Sidestep(config(self.stub, limits={"connections": IDLE},
                             timeouts={"idle": "60s"})) as s:
            self.socks = keep_alive_requests(s.port, IDLE)
            self.assertGreaterEqual(open_fds(s.pid), IDLE)
            newcomers = []
            try:
                for i in range(5):  # each stays open: the count stays at the limit
                    start = time.monotonic()
                    c = Conn(s.port)
                    newcomers.append(c)
                    c.request("GET", "/new/%d" % i)
                    self.assertEqual(c.recv_response().status, 200)
                    self.assertLess(time.monotonic() - start, scaled(1.0))
                # five idle connections made room, one each, taken from the oldest: the first
                # batch to go idle (within a batch the order is the backend's answer order)
                sst.wait_until(lambda: sum(1 for x in self.socks[:256] if is_closed(x)) == 5,
                               timeout=3, what="five of the oldest idle connections closed")
                self.assertEqual(sum(1 for x in self.socks if is_closed(x)), 5)
            finally:
                for c in newcomers:
                    c.close()


class OverTheLimit(unittest.TestCase):
    def test_busy_connections_503_at_once_then_room_returns(self):
        stub = Stub("us-east")
        busy = []
        try:
            with Sidestep(config(stub, limits={"connections": 50},
                                 timeouts={"request_head": "30s"})) as s:
                for _ in range(50):  # each one mid-head: nothing idle to reclaim
                    c = Conn(s.port)
                    c.send(b"GET /busy HTTP/1.1\r\n")
                    busy.append(c)
                time.sleep(0.2)
                for i in range(300):  # past the 256 reserve too: clients close after the 503
                    start = time.monotonic()
                    with Conn(s.port) as c:
                        c.request("GET", "/over")
                        r = c.recv_response(timeout=2)
                        self.assertEqual((r.status, r.header("Retry-After")), (503, "1"), i)
                        self.assertEqual(r.header("Connection"), "close")
                        self.assertTrue(c.closed(timeout=2))
                    self.assertLess(time.monotonic() - start, scaled(1.0))
                for c in busy[:10]:
                    c.close()
                sst.wait_until(lambda: sst.http(s.port, "GET", "/again").status == 200,
                               timeout=3, what="service once connections closed")
                # the busy ones that stayed finish their requests normally
                busy[10].send(b"Host: a\r\n\r\n")
                self.assertEqual(busy[10].recv_response().status, 200)
                for c in busy:  # a graceful stop waits for heads in progress
                    c.close()
        finally:
            for c in busy:
                c.close()
            stub.stop()

    def test_an_idle_connection_with_queued_answers_is_not_room(self):
        """At the limit, the only connection between requests is one whose answers are still
        queued (a pipelining client that reads nothing): it cannot be reclaimed without
        cutting them, so new clients get the 503, not a free pass past the limit."""
        stub = Stub("us-east")
        busy = []
        try:
            with Sidestep(config(stub, limits={"connections": 4, "buffer": "4k"},
                                 timeouts={"request_head": "30s", "send": "30s"})) as s:
                blocker = socket.socket()
                blocker.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                blocker.connect(("127.0.0.1", s.port))
                blocker.settimeout(0.05)
                batch = b"GET / HTTP/1.1\r\nHost: a\r\nX-Stub-Size: 4000\r\n\r\n" * 50
                start = time.monotonic()
                while time.monotonic() - start < scaled(1.0):
                    try:
                        blocker.send(batch)
                    except socket.timeout:
                        break  # sidestep stopped reading: its queue for this client is full
                for _ in range(3):  # mid-head: not idle
                    c = Conn(s.port)
                    c.send(b"GET /busy HTTP/1.1\r\n")
                    busy.append(c)
                time.sleep(0.2)
                for i in range(5):
                    with Conn(s.port) as c:
                        c.request("GET", "/over")
                        self.assertEqual(c.recv_response(timeout=2).status, 503, i)
                blocker.close()
                for c in busy:  # a graceful stop waits for heads in progress
                    c.close()
        finally:
            for c in busy:
                c.close()
            stub.stop()


class FileDescriptors(unittest.TestCase):
    def test_running_out_of_descriptors_never_crashes(self):
        stub = Stub("us-east")
        held = []
        try:
            with Sidestep(config(stub, timeouts={"request_head": "30s", "idle": "30s"})) as s:
                self.assertEqual(sst.http(s.port, "GET", "/before").status, 200)
                subprocess.run(["prlimit", "--pid", str(s.pid), "--nofile=256:256"], check=True,
                               capture_output=True)
                for _ in range(400):  # far more than sidestep can accept
                    try:
                        held.append(socket.create_connection(("127.0.0.1", s.port),
                                                             timeout=scaled(2)))
                    except OSError:
                        break
                time.sleep(0.3)
                cpu0 = cpu_seconds(s.pid)
                time.sleep(1.0)
                # libuv's reserve descriptor sheds the excess: no busy accept loop
                self.assertLess(cpu_seconds(s.pid) - cpu0, 0.5)
                self.assertTrue(s.running())
                self.assertLessEqual(open_fds(s.pid), 256)
                # while exhausted: a request may be shed, but never crashes anything
                try:
                    sst.http(s.port, "GET", "/during", timeout=1)
                except (OSError, sst.ProtocolError, TimeoutError):
                    pass
                for h in held:
                    h.close()
                held = []
                sst.wait_until(lambda: self._ok(s.port), timeout=5,
                               what="service after descriptors returned")
                for i in range(20):
                    self.assertEqual(sst.http(s.port, "GET", "/after/%d" % i).status, 200)
                self.assertTrue(s.running())
        finally:
            for h in held:
                h.close()
            stub.stop()

    @staticmethod
    def _ok(port):
        try:
            return sst.http(port, "GET", "/probe", timeout=1).status == 200
        except (OSError, sst.ProtocolError, TimeoutError):
            return False


if __name__ == "__main__":
    unittest.main(verbosity=2)
