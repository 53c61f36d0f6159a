"""Hardening: one client's answer never carries another client's data (issue 11, item 1).

A redirect whose answer waits (a small request body is read and dropped first, so the connection
stays usable) used to build its https Location host in a per-worker buffer and read it again
when the answer left: any request the worker handled meanwhile overwrote it, and client A got
`Location: https://<client B's Host>...`. Everything an answer depends on now lives in the
request. These tests interleave clients on one worker exactly that way: the head of A's POST,
then other clients' requests (single, pipelined, between the pieces of A's body), then the rest
of A's body, and check every Location byte for byte.
"""

import time
import unittest

from sst import Conn, Sidestep, Stub, scaled

VICTIM = "victim.example"
ATTACKER = "attacker.evil.example"


def config(backend):
    return {
        "workers": 1,
        "listen": [{"address": "127.0.0.1:0",
                    "https_redirect": {"get": 301, "other": 308, "port": 8443}}],
        "regions": [{"name": "us-east", "url": "https://us-east.example",
                     "backends": [backend.addr],
                     "health": {"enabled": False, "initial": "up"}}],
        "log": {"access": "stderr"},
    }


def head(method, target, host, extra=b""):
    return (b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (method.encode(), target.encode(), host.encode())
            + extra + b"\r\n")


class DeferredRedirect(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = Stub("us-east")
        cls.sst = Sidestep(config(cls.backend))

    @classmethod
    def tearDownClass(cls):
        cls.sst.stop()
        cls.backend.stop()

    def tearDown(self):
        # the redirect never reaches a backend
        self.assertEqual(self.backend.stats()["requests"], 0)

    def expect(self, conn, status, location, method="GET"):
        r = conn.recv_response(method=method, timeout=3)
        self.assertEqual((r.status, r.header("Location")), (status, location), r.raw[:300])
        return r

    def get_from(self, host, target="/b"):
        """Another client's GET, answered at once with its own Location."""
        with Conn(self.sst.port) as b:
            b.send(head("GET", target, host))
            self.expect(b, 301, "https://%s:8443%s" % (host, target))

    def a_post_head(self):
        """Client A: the head of a POST with a 10-byte body, and none of the body yet. The
        worker reads it before any later client's bytes (it is in the kernel first, and one
        worker takes ready sockets in order); the pause only gives a loaded machine time."""
        a = Conn(self.sst.port)
        a.send(head("POST", "/a-path", VICTIM, b"Content-Length: 10\r\n"))
        time.sleep(scaled(0.05))
        self.assertEqual(a.recv_some(timeout=0.05), b"", "answered before the body was read")
        return a

    def test_the_issue_interleaving(self):
        """A sends the head; B's GET gets its own Location; A's body gets A's Location."""
        with self.a_post_head() as a:
            self.get_from(ATTACKER)
            a.send(b"0123456789")
            self.expect(a, 308, "https://victim.example:8443/a-path", "POST")
            # the connection stays usable: the small body was read and dropped
            a.send(head("GET", "/again", VICTIM))
            self.expect(a, 301, "https://victim.example:8443/again")

    def test_body_split_over_several_writes(self):
        """Other clients are answered between every piece of A's body."""
        with self.a_post_head() as a:
            for i, piece in enumerate((b"012", b"3", b"45678")):
                self.get_from("attacker%d.evil.example" % i, "/b%d" % i)
                a.send(piece)
                # an answer before the last byte would be a framing bug of its own
                self.assertEqual(a.recv_some(timeout=0.05), b"")
            self.get_from(ATTACKER, "/last-before-a")
            a.send(b"9")
            self.expect(a, 308, "https://victim.example:8443/a-path", "POST")

    def test_pipelined_requests(self):
        """A pipelines a GET and the POST head; B pipelines three GETs with other hosts; A's
        body arrives with another pipelined GET. Every answer carries its own request's host,
        in order."""
        with Conn(self.sst.port) as a, Conn(self.sst.port) as b:
            a.send(head("GET", "/first", VICTIM) +
                   head("POST", "/a-path", VICTIM, b"Content-Length: 10\r\n"))
            # the GET's answer leaves in the same pass that parses the POST head behind it:
            # once it is here, the POST is waiting for its body
            self.expect(a, 301, "https://victim.example:8443/first")
            hosts = ["one.evil.example", "TWO.Evil.Example:81", "three.evil.example"]
            b.send(b"".join(head("GET", "/p%d" % i, h) for i, h in enumerate(hosts)))
            for i, h in enumerate(hosts):
                self.expect(b, 301, "https://%s:8443/p%d" % (h.split(":")[0].lower(), i))
            a.send(b"0123456789" + head("GET", "/after", "second.victim.example"))
            self.expect(a, 308, "https://victim.example:8443/a-path", "POST")
            self.expect(a, 301, "https://second.victim.example:8443/after")

    def test_a_long_host_is_not_cut_by_a_short_one(self):
        """The issue's Location was the victim's length cut from the attacker's name; the
        reverse (a long name answered after a short one) must not leave a tail either."""
        long_host = "a-much-longer-victim-name." * 6 + "example"
        with Conn(self.sst.port) as a:
            a.send(head("POST", "/x", long_host, b"Content-Length: 4\r\n"))
            time.sleep(scaled(0.05))
            self.get_from("s.example")
            a.send(b"body")
            self.expect(a, 308, "https://%s:8443/x" % long_host, "POST")


if __name__ == "__main__":
    unittest.main(verbosity=2)
