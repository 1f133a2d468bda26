"""The onstart script of a Vast instance (template: bootstrap.sh next to this file).

It prints a `bootstrap` event first (the started marker), installs usim (ProviderSettings.install: a pinned
PyPI requirement or a git URL@ref; skipped when USIM_PREINSTALLED is set), writes the cell's resolved
config, runs `usim-core train` under `timeout` (the max-runtime deadline), and on any exit prints an `exit`
event with the status and stops its container. Over Vast's 4048-character onstart limit the script is
shipped gzip+base64 inside a short unpacking line. Secrets never enter the text: they travel as
LaunchSpec.env instance variables.
"""

from __future__ import annotations

import base64
import gzip
import shlex
from pathlib import Path
from typing import Any

import yaml

from usim_tui.fleet.providers.base import LaunchSpec

ONSTART_MAX = 4048
TEMPLATE = Path(__file__).with_name("bootstrap.sh")
_SECRET_HINTS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def install_arg(install: str) -> str:
    """`usim==0.1.0` -> a quoted pip requirement; `https://github.com/o/r@ref` -> `git+https://...@ref`."""
    req = install.strip()
    if not req:
        raise ValueError("provider.install is empty: give a pinned version (usim==0.1.0) or a git URL@ref")
    if "://" in req and not req.startswith("git+"):
        req = "git+" + req
    return shlex.quote(req)


def host_run_dir(spec: LaunchSpec) -> str:
    """runs/<sweep>/<cell>/<attempt> under the host's workdir (the laptop's absolute path means nothing there)."""
    return f"runs/{spec.sweep}/{spec.cell}/{spec.attempt}"


def render(spec: LaunchSpec, settings: Any) -> str:
    """The full bootstrap script for one attempt."""
    config = yaml.safe_dump(spec.config, sort_keys=False).rstrip("\n")
    if "USIM_CONFIG_EOF" in config:
        raise ValueError("the run config contains the heredoc terminator USIM_CONFIG_EOF")
    for name, value in spec.env.items():
        secret = any(h in name.upper() for h in _SECRET_HINTS)
        if secret and value and len(value) >= 8 and (value in config or value in spec.label):
            raise ValueError("a secret from the instance env appears in the config or label; refusing to ship it")
    script = TEMPLATE.read_text()
    for key, value in {"__RUN_DIR__": shlex.quote(host_run_dir(spec)), "__LABEL__": spec.label,
                       "__INSTALL__": install_arg(settings.install),
                       "__MAX_RUNTIME__": str(int(settings.max_runtime_s)), "__CONFIG__": config}.items():
        script = script.replace(key, value)
    return script


def pack(script: str) -> str:
    """A short onstart that unpacks the gzip+base64 script to a file and runs it (not from stdin, so the
    trainer cannot swallow the script's own text)."""
    blob = base64.b64encode(gzip.compress(script.encode(), mtime=0)).decode()
    return ("#!/bin/bash\n# usim-bootstrap (packed)\nW=\"${USIM_WORKDIR:-/workspace}\"; mkdir -p \"$W\"\n"
            f"echo '{blob}' | base64 -d | gunzip > \"$W/usim-bootstrap.sh\" && exec bash \"$W/usim-bootstrap.sh\"\n")


def onstart_script(spec: LaunchSpec, settings: Any) -> str:
    script = render(spec, settings)
    if len(script) <= ONSTART_MAX:
        return script
    packed = pack(script)
    if len(packed) > ONSTART_MAX:
        raise ValueError(f"the bootstrap for {spec.label} is {len(packed)} characters packed; "
                         f"Vast's onstart limit is {ONSTART_MAX}")
    return packed
