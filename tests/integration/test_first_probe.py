"""Issue 11, item 3: the first probe of a backend whose state is a guess (its `initial` state)
comes within min(interval, 1s) of the start, or of the reload that adds it, not at a random
point of the whole interval. With `interval: 10s` a failover region was DOWN for up to 10 s
after a start, so a POST whose primary backends refused got 502 instead of the in-flight
failover 307. Backends a reload keeps keep their probe schedule.
"""

import time
import unittest

import sst
from sst import Sidestep, Stub, http, scaled

SLOW_PROBES = {"interval": "10s", "timeout": "1s"}  # fast_interval 500ms, jitter 1s: defaults


def config(primary, secondary=None):
    regions = [{"name": "us-east", "url": "http://us-east.example",
                "backends": [s.addr for s in primary], "health": dict(SLOW_PROBES)}]
    route = {"name": "default", "match": {"host": "*", "path_prefix": "/"},
             "primary": "us-east", "failover": []}
    if secondary:
        regions.append({"name": "eu-west", "url": "http://%s" % secondary[0].addr,
                        "backends": [s.addr for s in secondary], "health": dict(SLOW_PROBES)})
        route["failover"] = ["eu-west"]
    return {"workers": 1, "local_region": "us-east", "listen": [{"address": "127.0.0.1:0"}],
            "regions": regions, "routes": [route], "log": {"access": "stderr"}}


def sleep_until(t):
    left = t - time.monotonic()
    if left > 0:
        time.sleep(left)


class FirstProbe(unittest.TestCase):
    def setUp(self):
        self.a = Stub("us-east")
        self.b = Stub("us-east")
        self.eu = Stub("eu-west")
        self.sst = None

    def tearDown(self):
        if self.sst is not None:
            self.sst.stop()
        for s in (self.a, self.b, self.eu):
            s.stop()

    def test_failover_region_is_known_up_soon_after_start(self):
        t0 = time.monotonic()
        self.sst = Sidestep(config([self.a, self.b], [self.eu]))
        # The primaries die 1.5 s after the start, long before a 10 s interval ends.
        sleep_until(t0 + scaled(1.5))
        self.a.kill()
        self.b.kill()
        r = http(self.sst.port, "POST", "/orders?id=7", body=b'{"n": 1}',
                 headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 307, "the failover region was not probed yet:\n%s"
                         % self.sst.stderr_text())
        self.assertEqual(r.header("Location"), "http://%s/orders?id=7" % self.eu.addr)
        self.sst.wait_stderr("in-flight failover", timeout=2)
        # and it was the probe, not the POST, that found eu-west: its first probe came within
        # the first-probe window
        self.assertGreaterEqual(self.eu.stats()["health"], 1)

    def test_reload_probes_an_added_backend_at_once_and_keeps_the_others(self):
        self.sst = Sidestep(config([self.a]))
        sst.wait_until(lambda: self.a.stats()["health"] >= 1, timeout=1.5,
                       what="the first probe of a guessed state")
        self.sst.write_config(config([self.a], [self.eu]))
        before = self.sst.stderr_text().count("reloaded ")
        t_reload = time.monotonic()
        self.sst.reload()
        sst.wait_until(lambda: self.sst.stderr_text().count("reloaded ") > before, timeout=5,
                       what="reload")
        # eu-west is new: probed within the window, so it is UP well before 10 s
        self.sst.wait_stderr("region eu-west down -> up", timeout=1.5)
        self.assertLess(time.monotonic() - t_reload, scaled(1.5))
        # us-east's backend was carried over: its next probe stays about 10 s after its first
        # (at least interval - jitter = 9 s), so nothing probes it in the seconds after the
        # reload, as a restarted schedule spread over [0, 10 s) would
        sleep_until(t_reload + scaled(1.5))
        self.assertEqual(self.a.stats()["health"], 1)
        self.a.kill()
        r = http(self.sst.port, "PUT", "/x", body=b"1")
        self.assertEqual(r.status, 307)


if __name__ == "__main__":
    unittest.main()
