"""What the TLS workloads share: the certificates (made at run time by tests/support/certs.py,
never checked in), the TLS settings every server gets (read from sidestep's own source, so the
three servers cannot drift apart), and the handshake load generator (tls-load, bench/tls_load.c).
"""

import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TLS_CTX_SOURCE = os.path.join(ROOT, "src", "tls", "tls_ctx.c")
#: certificates.make() names: the certificate each key type uses (leaf + intermediate in the file)
CERT_NAMES = {"ecdsa": "api-ecdsa", "rsa": "api-rsa"}


def _c_string(source, name):
    """The value of `static const char NAME[] = "..." "...";` in a C file (pieces joined)."""
    m = re.search(r"static const char %s\[\]\s*=\s*((?:\s*\"[^\"]*\")+)\s*;" % re.escape(name),
                  source)
    if not m:
        raise RuntimeError("%s: no %s[] string (the TLS settings of the bench come from it)"
                           % (TLS_CTX_SOURCE, name))
    return "".join(re.findall(r"\"([^\"]*)\"", m.group(1)))


def policy():
    """sidestep's default TLS policy, as the nginx and HAProxy templates need it: TLS 1.2
    suites (ciphers: intermediate), TLS 1.3 suites and key exchange groups."""
    with open(TLS_CTX_SOURCE) as f:
        source = f.read()
    return {"CIPHERS12": _c_string(source, "tls_intermediate"),
            "CIPHERS13": _c_string(source, "tls_suites13"),
            "CURVES": _c_string(source, "tls_groups")}


class Certs:
    """The run's certificates, made once into DIR/certs on first use."""

    def __init__(self, out_dir):
        self.dir = os.path.join(out_dir, "certs")
        self.manifest = None

    def values(self, keytype):
        """Template values for a server with the `keytype` (ecdsa, rsa) certificate: CERT and
        KEY (sidestep, nginx), PEM (HAProxy: the chain then the key in one file), and the
        policy."""
        if self.manifest is None:
            sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
            import certs  # noqa: E402  (tests/support/certs.py, standard library only)

            self.manifest = certs.make(self.dir)
        entry = self.manifest["files"][CERT_NAMES[keytype]]
        pem = os.path.join(self.dir, "%s-haproxy.pem" % CERT_NAMES[keytype])
        if not os.path.exists(pem):
            with open(pem, "w") as out:
                for path in (entry["cert"], entry["key"]):
                    with open(path) as f:
                        out.write(f.read())
            os.chmod(pem, 0o600)
        values = {"CERT": entry["cert"], "KEY": entry["key"], "PEM": pem}
        values.update(policy())
        return values


def load_argv(binary, port, target, seconds, conns, mode):
    """The tls-load command line: CONNS connections, each a new TCP connection with a full
    (`full`) or resumed (`resume`) handshake and one GET, for SECONDS."""
    return [binary, "127.0.0.1:%d" % port, target, "%g" % seconds, str(conns), mode]


def parse_load(text):
    """tls-load's JSON line as a dict with handshakes, resumed, answers, statuses, errors,
    seconds. Raises ValueError when the output is not that."""
    lines = [x for x in text.splitlines() if x.startswith("{")]
    if not lines:
        raise ValueError("no result line from tls-load:\n" + text[-1500:])
    out = json.loads(lines[-1])
    for key in ("seconds", "handshakes", "resumed", "answers", "statuses", "errors"):
        if key not in out:
            raise ValueError("tls-load result without %r: %s" % (key, lines[-1]))
    return out
