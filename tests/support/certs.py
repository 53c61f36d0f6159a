#!/usr/bin/env python3
"""Test certificates for sidestep's TLS tests, integration tests and bench/, made at run time
with the `openssl` command (never checked in: they expire, and a key in the repository would
be everyone's key). Python 3 standard library only.

    python3 tests/support/certs.py --out DIR      # writes DIR/*.pem, DIR/*.key, DIR/certs.json

or from Python: `certs.make(DIR)` returns the manifest (the same dict as certs.json):
{"ca": path, "other_ca": path, "inter": path, "files": {NAME: {"cert", "key", "type", "names",
"not_before", "not_after"}}}, where the bad inputs below have only "cert" and/or "key".

What DIR holds (every leaf's chain is in its .pem, leaf first; keys are unencrypted PEM):
  ca.pem/.key            test root CA (ECDSA P-256), the trust anchor for clients
  other-ca.pem/.key      an unrelated root: "wrong CA" for client verification
  inter.pem/.key         intermediate CA signed by ca.pem
  api-rsa.pem/.key       api.example.test, RSA 2048, chain: leaf + inter
  api-ecdsa.pem/.key     api.example.test, ECDSA P-256, chain: leaf + inter (same name, other type)
  www.pem/.key           www.example.test and static.example.test, ECDSA, signed by the root
  wild.pem/.key          *.wild.example.test, ECDSA, signed by the root
  cnonly.pem/.key        cnonly.example.test in the subject CN only (no subjectAltName)
  expired.pem/.key       expired a year ago
  future.pem/.key        valid only from 30 days from now
  soon.pem/.key          expires in 4 days 23 hours (a warning at load, not an error)
  selfsigned.pem/.key    localhost and 127.0.0.1, self-signed (the demo's kind of certificate)
  badchain.pem           api-ecdsa's leaf followed by other-ca.pem: the chain does not link
  rsa1024.pem/.key       RSA 1024: refused by OpenSSL security level 2
  unmatched.key          an ECDSA key that belongs to no certificate
  encrypted.key          www.key encrypted with the passphrase "secret"
  garbage.pem            text that is not PEM
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile

VERSION = 1

CA_CNF = """\
[ca]
default_ca = test_ca

[test_ca]
dir = {work}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no

[policy_any]
commonName = supplied

[req]
distinguished_name = req_dn
prompt = no

[req_dn]
CN = placeholder

[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[inter]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""

LEAF_EXT = """\
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
{san}
"""


class OpensslMissing(Exception):
    """The openssl command is not installed: the tests cannot make their certificates."""


def _openssl(*args, stdin=None):
    exe = shutil.which("openssl")
    if exe is None:
        raise OpensslMissing("the `openssl` command is not installed (Debian package: openssl); "
                             "TLS tests need it to make their certificates")
    p = subprocess.run([exe] + list(args), input=stdin, capture_output=True)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed (exit %d):\n%s" %
                           (" ".join(args), p.returncode, p.stderr.decode(errors="replace")))
    return p.stdout


def _asn1_time(t):
    return t.strftime("%Y%m%d%H%M%SZ")


class _Maker:
    def __init__(self, out, work):
        self.out = out
        self.work = work
        self.cnf = os.path.join(work, "ca.cnf")
        os.makedirs(os.path.join(work, "newcerts"))
        with open(os.path.join(work, "index.txt"), "w"):
            pass
        with open(os.path.join(work, "serial"), "w") as f:
            f.write("1000\n")
        with open(self.cnf, "w") as f:
            f.write(CA_CNF.format(work=work))
        self.now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        self.manifest = {"version": VERSION, "dir": out, "files": {}}

    def path(self, name):
        return os.path.join(self.out, name)

    def key(self, name, kind):
        if kind == "ecdsa":
            opts = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        else:
            bits = kind.split("-")[1] if "-" in kind else "2048"
            opts = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:" + bits]
        _openssl("genpkey", *opts, "-out", self.path(name))
        return self.path(name)

    def root(self, name, cn):
        key = self.key(name + ".key", "ecdsa")
        _openssl("req", "-config", self.cnf, "-new", "-x509", "-key", key, "-subj", "/CN=" + cn,
                 "-days", "3650", "-sha256", "-extensions", "root", "-out", self.path(name + ".pem"))
        return self.path(name + ".pem"), key

    def sign(self, csr_key, cn, issuer, out, ext_section, ext_text, start, end):
        """Signs a CSR for csr_key with issuer (pem, key) into out; returns out."""
        csr = os.path.join(self.work, os.path.basename(out) + ".csr")
        _openssl("req", "-config", self.cnf, "-new", "-key", csr_key, "-subj", "/CN=" + cn,
                 "-out", csr)
        extfile = []
        if ext_text:  # else the section comes from ca.cnf
            ext = os.path.join(self.work, os.path.basename(out) + ".ext")
            with open(ext, "w") as f:
                f.write(ext_text)
            extfile = ["-extfile", ext]
        _openssl("ca", "-batch", "-config", self.cnf, "-notext", "-md", "sha256",
                 "-cert", issuer[0], "-keyfile", issuer[1], "-in", csr, "-out", out,
                 "-startdate", _asn1_time(start), "-enddate", _asn1_time(end),
                 *extfile, "-extensions", ext_section)
        return out

    def leaf(self, name, kind, names, issuer, chain=(), start=None, end=None, san=True):
        """A leaf certificate; the .pem holds the leaf then `chain` (paths, in order)."""
        start = start or self.now - datetime.timedelta(days=1)
        end = end or self.now + datetime.timedelta(days=365)
        key = self.key(name + ".key", kind)
        sans = ",".join(("IP:" if n.replace(".", "").isdigit() else "DNS:") + n for n in names)
        ext = LEAF_EXT.format(san=("subjectAltName = " + sans) if san else "")
        leaf = os.path.join(self.work, name + ".leaf.pem")
        self.sign(key, names[0], issuer, leaf, "leaf", ext, start, end)
        pem = self.path(name + ".pem")
        with open(pem, "wb") as f:
            for part in (leaf,) + tuple(chain):
                with open(part, "rb") as p:
                    f.write(p.read())
        self.note(name, pem, key, kind, names, start, end)
        return pem, key

    def note(self, name, pem, key, kind, names, start, end):
        self.manifest["files"][name] = {
            "cert": pem, "key": key, "type": kind, "names": list(names),
            "not_before": int(start.timestamp()), "not_after": int(end.timestamp()),
        }


def make(out):
    """Makes every certificate into `out` (created if missing) and returns the manifest."""
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="sst-certs-")
    try:
        m = _Maker(out, work)
        now = m.now
        day = datetime.timedelta(days=1)
        ca = m.root("ca", "sidestep test root CA")
        other = m.root("other-ca", "sidestep unrelated CA")
        inter_key = m.key("inter.key", "ecdsa")
        inter = m.sign(inter_key, "sidestep test intermediate CA", ca, m.path("inter.pem"),
                       "inter", "", now - day, now + 3650 * day)
        inter = (inter, inter_key)
        m.leaf("api-rsa", "rsa", ["api.example.test"], inter, chain=[inter[0]])
        m.leaf("api-ecdsa", "ecdsa", ["api.example.test"], inter, chain=[inter[0]])
        m.leaf("www", "ecdsa", ["www.example.test", "static.example.test"], ca)
        m.leaf("wild", "ecdsa", ["*.wild.example.test"], ca)
        m.leaf("cnonly", "ecdsa", ["cnonly.example.test"], ca, san=False)
        m.leaf("expired", "ecdsa", ["expired.example.test"], ca, start=now - 730 * day,
               end=now - 365 * day)
        m.leaf("future", "ecdsa", ["future.example.test"], ca, start=now + 30 * day,
               end=now + 400 * day)
        # an hour short of 5 days, so a check right after this reads "in 4 days"
        m.leaf("soon", "ecdsa", ["soon.example.test"], ca,
               end=now + 5 * day - datetime.timedelta(hours=1))
        m.leaf("rsa1024", "rsa-1024", ["weak.example.test"], ca)

        # self-signed: the leaf is its own issuer
        ss_key = m.key("selfsigned.key", "ecdsa")
        ss_cnf = os.path.join(work, "selfsigned.cnf")
        with open(ss_cnf, "w") as f:  # req -x509 reads its extensions from -config only
            f.write(CA_CNF.format(work=work) + "\n" +
                    LEAF_EXT.format(san="subjectAltName = DNS:localhost,IP:127.0.0.1")
                    .replace("authorityKeyIdentifier = keyid,issuer\n", ""))
        _openssl("req", "-config", ss_cnf, "-new", "-x509", "-key", ss_key, "-subj", "/CN=localhost",
                 "-days", "3650", "-sha256", "-extensions", "leaf", "-out", m.path("selfsigned.pem"))
        m.note("selfsigned", m.path("selfsigned.pem"), ss_key, "ecdsa", ["localhost", "127.0.0.1"],
               now, now + 3650 * day)

        # a leaf whose "intermediate" is an unrelated CA
        with open(m.path("badchain.pem"), "wb") as f:
            with open(os.path.join(work, "api-ecdsa.leaf.pem"), "rb") as p:
                f.write(p.read())
            with open(other[0], "rb") as p:
                f.write(p.read())
        m.key("unmatched.key", "ecdsa")
        _openssl("pkey", "-in", m.path("www.key"), "-aes256", "-passout", "pass:secret",
                 "-out", m.path("encrypted.key"))
        with open(m.path("garbage.pem"), "w") as f:
            f.write("this is not a certificate\n")
        files = m.manifest["files"]
        files["badchain"] = {"cert": m.path("badchain.pem"), "key": m.path("api-ecdsa.key")}
        files["unmatched"] = {"key": m.path("unmatched.key")}
        files["encrypted"] = {"key": m.path("encrypted.key")}
        files["garbage"] = {"cert": m.path("garbage.pem"), "key": m.path("garbage.pem")}
        m.manifest["ca"] = ca[0]
        m.manifest["other_ca"] = other[0]
        m.manifest["inter"] = inter[0]
        with open(m.path("certs.json"), "w") as f:
            json.dump(m.manifest, f, indent=2, sort_keys=True)
        return m.manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="directory to write the certificates into")
    args = ap.parse_args()
    try:
        make(args.out)
    except OpensslMissing as e:
        print("certs.py: " + str(e), file=sys.stderr)
        return 1
    except RuntimeError as e:
        print("certs.py: " + str(e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
