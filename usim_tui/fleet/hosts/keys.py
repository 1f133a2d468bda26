"""usim's own SSH key pair: generated once (ed25519, asyncssh), kept with the user's config.

Default path `$XDG_CONFIG_HOME/usim/ssh/id_ed25519` (`~/.config/usim/ssh/id_ed25519`), private key mode 0600,
public key next to it (`.pub`); `USIM_SSH_KEY` names another private key file. The private key never leaves
this file: not into the ledger, logs, reports, onstart scripts or the repository. Only the public key is sent
(registered on the Vast account, POST /api/v0/ssh/).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import asyncssh


@dataclass(frozen=True)
class KeyPair:
    path: Path            # the private key file (0600)
    public: str           # OpenSSH public key text: "ssh-ed25519 AAAA... usim"

    def __repr__(self) -> str:
        return f"KeyPair(path={str(self.path)!r})"

    def load(self) -> asyncssh.SSHKey:
        return asyncssh.read_private_key(str(self.path))


def default_key_path(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    if env.get("USIM_SSH_KEY"):
        return Path(env["USIM_SSH_KEY"]).expanduser()
    home = Path(env.get("HOME") or Path.home())
    xdg = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    return xdg / "usim" / "ssh" / "id_ed25519"


def ensure_key(path: Path | None = None) -> KeyPair:
    """The key pair at `path` (default_key_path()), generated on first use. A key file readable by others
    is refused, as ssh refuses it."""
    path = path or default_key_path()
    if path.exists():
        mode = path.stat().st_mode & 0o077
        if mode:
            raise PermissionError(f"{path} is readable by others (mode {oct(path.stat().st_mode & 0o777)}): "
                                  f"chmod 600 {path}")
        key = asyncssh.read_private_key(str(path))
    else:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = asyncssh.generate_private_key("ssh-ed25519", comment="usim")
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.export_private_key())
        os.replace(tmp, path)
    public = key.export_public_key().decode().strip()
    pub_path = path.with_name(path.name + ".pub")
    if not pub_path.exists() or pub_path.read_text().strip() != public:
        pub_path.write_text(public + "\n")
    return KeyPair(path=path, public=public)


def key_body(public: str) -> str:
    """The comparable part of an OpenSSH public key (type and base64, without the comment)."""
    return " ".join(public.split()[:2])
