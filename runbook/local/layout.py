"""The local environment's folders and generated secrets."""

import os
from secrets import token_urlsafe

from runbook.config import Environment
from runbook.local.paths import Paths
from runbook.secrets import references, secret_file


def secrets(env: Environment, p: Paths) -> list[str]:
    """Generate each secret file the environment references inside the state folder, once:
    a `.pem` file as an Ed25519 signing key, any other as a random token."""
    done = []
    for _, template in env.secret_values():
        for ref in references(template):
            path = secret_file(ref) if ref.startswith("file:") else None
            if path and path.resolve().is_relative_to(p.state.resolve()) and not path.exists():
                path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
                if path.suffix == ".pem":
                    from runbook.record import signing  # cryptography: only when a key is missing

                    signing.generate_key(path)
                else:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "w") as out:
                        out.write(token_urlsafe(32))
                done.append(f"generated secret {path}")
    return done


def folders(env: Environment) -> list[str]:
    done = []
    for folder, mode in ((env.app.releases, 0o755), (env.app.shared, 0o750), (env.database.backup_dir, 0o700)):
        if not folder.exists():
            folder.mkdir(parents=True, mode=mode)
            folder.chmod(mode)
            done.append(f"created {folder}")
    return done
