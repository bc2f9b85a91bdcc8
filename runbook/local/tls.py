"""The local environment's certificate authority and the load balancer's server certificate, generated
once under `<state>/tls/` and kept across runs: the checks trust `ca.pem` through the environment file
(`endpoints.ca_file`, `tls[].ca_file`), never the system's store. The generating is in
`runbook.local.certificates`, loaded only when something is missing."""

from dataclasses import dataclass
from pathlib import Path

from runbook.local.paths import Paths

CA_DAYS = 3650
SERVER_DAYS = 825
NAMES = ("localhost",)
ADDRESSES = ("127.0.0.1",)


@dataclass(frozen=True)
class Files:
    """Where the CA and the server's certificate are kept."""

    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca-key.pem"

    @property
    def server(self) -> Path:
        """The server's certificate, then its key: the one file HAProxy's `crt` reads."""
        return self.folder / "server.pem"


def files(p: Paths) -> Files:
    return Files(p.state / "tls")


def ensure(p: Paths) -> list[str]:
    """Generate what is missing: the CA (and, signed by it, the server's certificate for `localhost`
    and `127.0.0.1`); an existing one is kept. A new CA also means a new server certificate."""
    f = files(p)
    f.folder.mkdir(parents=True, mode=0o700, exist_ok=True)
    done = []
    if f.ca_cert.exists() and f.ca_key.exists() and f.server.exists():
        return done
    from runbook.local import certificates  # cryptography: only when something must be generated

    if not (f.ca_cert.exists() and f.ca_key.exists()):
        certificates.make_ca(f)
        f.server.unlink(missing_ok=True)
        done.append(f"generated the local CA {f.ca_cert}")
    if not f.server.exists():
        certificates.make_server(f)
        done.append(f"generated the server certificate {f.server} for {', '.join(NAMES + ADDRESSES)}, signed by the local CA")
    return done
