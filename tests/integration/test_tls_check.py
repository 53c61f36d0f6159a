"""`sidestep --check` on TLS configs: it builds every TLS context, so a bad certificate fails
the check with file:line:col and the key, and warnings (a certificate expiring soon, hsts on a
plain listener) are printed and do not fail it. Serving TLS is test_tls*.py's."""

import os
import shutil
import subprocess
import tempfile
import unittest

import certs
import sst

CHECK_TIMEOUT = sst.scaled(20)


class TlsCheck(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="sst-tls-check-")
        cls.certs = certs.make(os.path.join(cls.dir, "certs"))["files"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def check(self, text):
        path = self.write("sidestep.yaml", text)
        p = subprocess.run([sst.SST_BIN, "--check", path], capture_output=True, text=True,
                           timeout=CHECK_TIMEOUT)
        return p.returncode, p.stdout, p.stderr, path

    def listener(self, pairs, extra=""):
        lines = ["listen:", "  - address: 127.0.0.1:8443", "    tls:", "      certificates:"]
        for cert, key in pairs:
            lines.append("        - {cert: %s, key: %s}" % (self.certs[cert]["cert"],
                                                           self.certs[key]["key"]))
        return "\n".join(lines) + "\n" + extra + (
            "regions: [{name: a, backends: [127.0.0.1:9001]}]\n")

    def test_valid_config_with_warnings(self):
        rc, out, err, path = self.check(self.listener(
            [("api-rsa", "api-rsa"), ("api-ecdsa", "api-ecdsa"), ("soon", "soon")],
            "  - address: 127.0.0.1:8080\n"
            "    https_redirect: {port: 8443}\n"
            "    hsts: {}\n"))
        self.assertEqual(rc, 0, err)
        self.assertIn("%s: ok (2 listeners, 1 region, 1 backend, 1 route, 3 certificates)" % path,
                      out)
        self.assertIn("%s:7:18: listen[0].tls.certificates[2].cert: warning: " % path, err)
        self.assertIn("soon.pem expires on ", err)
        self.assertIn("%s:10:11: listen[1].hsts: warning: hsts takes effect only" % path, err)
        self.assertEqual(err.count("warning:"), 2, err)

    def test_bad_certificates_fail_with_file_line_and_key(self):
        cases = [
            ([("www", "unmatched")], ":5:", "listen[0].tls.certificates[0].key: ",
             "does not match the certificate"),
            ([("www", "www"), ("expired", "expired")], ":6:18: ",
             "listen[0].tls.certificates[1].cert: ", "expired on"),
            ([("future", "future")], ":5:18: ", "listen[0].tls.certificates[0].cert: ",
             "is not valid yet"),
        ]
        for pairs, where, key, msg in cases:
            with self.subTest(key=key, msg=msg):
                rc, out, err, path = self.check(self.listener(pairs))
                self.assertEqual(rc, 1, err)
                self.assertEqual(out, "")
                self.assertIn(path + where, err)
                self.assertIn(key, err)
                self.assertIn(msg, err)

    def test_unreadable_ca_and_ticket_key_file(self):
        rc, _, err, path = self.check(
            "listen: [127.0.0.1:8080]\n"
            "regions: [{name: a, backends: [127.0.0.1:9443], tls: {ca: /nonexistent/ca.pem}}]\n")
        self.assertEqual(rc, 1)
        self.assertIn("%s:2:59: regions[0].tls.ca: /nonexistent/ca.pem: cannot read" % path, err)
        self.write("ticket.key", "not base64\n")
        rc, _, err, path = self.check(self.listener(
            [("www", "www")], "      ticket_key_file: %s\n" % os.path.join(self.dir, "ticket.key")))
        self.assertEqual(rc, 1)
        self.assertIn("%s:6:24: listen[0].tls.ticket_key_file: " % path, err)
        self.assertIn("line 1: expected the base64 text of 80 random bytes", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
