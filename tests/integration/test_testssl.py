"""testssl.sh (Debian package `testssl.sh`, issue 14) against a sidestep TLS listener on
loopback with the default policy (`ciphers: intermediate`, TLS 1.2 and 1.3) and both an ECDSA
and an RSA certificate for the same name: protocols (-p), cipher categories (-s), forward
secrecy (-f) and the vulnerability checks (-U), read back from testssl's JSON. No SSL 2/3 and
no TLS 1.0/1.1, no NULL, anonymous, export, low, 3DES or CBC suite, and every known
vulnerability reported as not applicable. Bounded (the scan takes about 25 s; it is killed at
240 s) and without DNS lookups (--nodns none). Skipped only when testssl is not installed.
"""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import sst
from sst import Sidestep

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")
NOT_OFFERED = ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "cipherlist_NULL", "cipherlist_aNULL",
               "cipherlist_EXPORT", "cipherlist_LOW", "cipherlist_3DES_IDEA",
               "cipherlist_AVERAGE")
OFFERED = ("TLS1_2", "TLS1_3", "cipherlist_STRONG", "PFS")
VULNERABILITIES = ("heartbleed", "CCS", "ticketbleed", "ROBOT", "secure_renego",
                   "secure_client_renego", "CRIME_TLS", "BREACH", "POODLE_SSL", "fallback_SCSV",
                   "SWEET32", "FREAK", "DROWN", "LOGJAM", "BEAST", "LUCKY13", "RC4")
#: severities testssl gives a finding that is a weakness
BAD = ("LOW", "MEDIUM", "HIGH", "CRITICAL")


@unittest.skipIf(TESTSSL is None, "testssl is not installed (scripts/install-deps.sh test)")
class Testssl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        f = sst.tls_certs()["files"]
        cls.port = sst.free_port()
        cls.sst = Sidestep({
            "workers": 1,
            "listen": [{"address": "127.0.0.1:%d" % cls.port,
                        "tls": {"certificates": [
                            {"cert": f["api-ecdsa"]["cert"], "key": f["api-ecdsa"]["key"]},
                            {"cert": f["api-rsa"]["cert"], "key": f["api-rsa"]["key"]}]}}],
            "regions": [{"name": "us-east", "url": "http://us-east.example",
                         "backends": ["127.0.0.1:%d" % sst.free_port()],
                         "health": {"enabled": False, "initial": "down"}},
                        {"name": "eu-west", "url": "http://eu-west.example",
                         "backends": ["127.0.0.1:%d" % sst.free_port()],
                         "health": {"enabled": False, "initial": "up"}}],
            "routes": [{"name": "default", "primary": "us-east", "failover": ["eu-west"]}],
        })
        cls.dir = tempfile.mkdtemp(prefix="sidestep-testssl-")
        out = os.path.join(cls.dir, "testssl.json")
        try:
            cls.done = subprocess.run(
                [TESTSSL, "--quiet", "--color", "0", "--warnings", "off", "--nodns", "none",
                 "--jsonfile", out, "-p", "-s", "-f", "-U", "127.0.0.1:%d" % cls.port],
                capture_output=True, timeout=240, cwd=cls.dir)
            with open(out) as fh:
                cls.findings = {e["id"]: e for e in json.load(fh)}
        except BaseException:
            cls.sst.stop()
            shutil.rmtree(cls.dir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.sst.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def finding(self, key):
        self.assertIn(key, self.findings, "testssl reported no %s:\n%s"
                      % (key, self.done.stdout.decode("utf-8", "replace")[-4000:]))
        return self.findings[key]

    def test_the_scan_completed(self):
        self.assertEqual(self.done.returncode, 0, self.done.stdout.decode("utf-8", "replace"))
        self.assertIn("scanTime", self.findings)
        # a check that could not run is a WARN naming it; the engine note is about the client
        warns = [e for e in self.findings.values()
                 if e["severity"] == "WARN" and e["id"] != "engine_problem"]
        self.assertEqual(warns, [])

    def test_no_old_protocol_nor_weak_suite(self):
        for key in NOT_OFFERED:
            self.assertTrue(self.finding(key)["finding"].startswith("not offered"),
                            "%s: %r" % (key, self.finding(key)))
        for key in OFFERED:
            self.assertTrue(self.finding(key)["finding"].startswith("offered"),
                            "%s: %r" % (key, self.finding(key)))
        self.assertEqual(self.finding("ALPN")["finding"], "http/1.1")

    def test_no_known_vulnerability(self):
        for key in VULNERABILITIES:
            self.assertEqual(self.finding(key)["severity"], "OK",
                             "%s: %r" % (key, self.finding(key)))
        weak = [e for e in self.findings.values() if e["severity"] in BAD]
        self.assertEqual(weak, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
