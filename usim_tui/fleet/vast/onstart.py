"""The onstart script of a Vast instance (template: onstart.sh next to this file).

With `provider.install: wheel` (the default) the onstart only prints the `bootstrap` event and saves the
container's own API variables for the run script; the controller then brings the run up over SSH
(fleet/hosts/bring_up.py: the wheel built from the sweep's checkout, the resolved config, `run_script.sh` started
detached). Otherwise the onstart does everything itself: it prints a `bootstrap` event first (the started
marker), installs usim (a pinned requirement `usim-sweeps==0.1.0`, a wheel URL, or a git URL@ref; skipped
when USIM_PREINSTALLED is set), writes the cell's resolved
config, runs `usim-core train` (under torchrun, one process per GPU, on a multi-GPU host) under `timeout` (the max-runtime deadline), and on any exit prints an `exit`
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

from usim_tui.fleet.hosts.run_script import host_run_dir, trainer
from usim_tui.fleet.providers.base import LaunchSpec

ONSTART_MAX = 4048
TEMPLATE = Path(__file__).with_name("onstart.sh")
WHEEL = "wheel"
# The SSH-mode onstart: the started marker, and the container's own API variables (which an SSH session does
# not inherit) saved 0600 for run_script.sh, which stops the container with them when the trainer ends.
SSH_ONSTART = r"""#!/bin/bash
# usim-bootstrap (ssh): the controller brings the run up over SSH (usim_tui/fleet/hosts/bring_up.py)
echo "@usim {\"v\":1,\"kind\":\"bootstrap\",\"label\":\"__LABEL__\",\"mode\":\"ssh\",\"t\":$(date +%s)}"
D="${USIM_HOME:-$HOME}/.usim"; mkdir -p "$D" && umask 077 && {
  echo "export CONTAINER_ID='${CONTAINER_ID:-}'"; echo "export CONTAINER_API_KEY='${CONTAINER_API_KEY:-}'"
  echo "export VAST_URL='${VAST_URL:-https://console.vast.ai}'"; } > "$D/container.env"
# An SSH session does not see the image's environment (its PATH to python, CUDA's variables): save it for them.
export -p | grep -Ev '^declare -x (PWD|OLDPWD|SHLVL|_|HOSTNAME|TERM|PS1)=' > "$D/image.env.part" && mv "$D/image.env.part" "$D/image.env"
"""
_SECRET_HINTS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def install_arg(install: str) -> str:
    """`usim-sweeps==0.1.0` -> a quoted pip requirement; a wheel URL (`https://.../x.whl`) as it is;
    `https://github.com/o/r@ref` -> `git+https://...@ref`."""
    req = install.strip()
    if not req or req == WHEEL:
        raise ValueError("provider.install: give a pinned version (usim-sweeps==0.1.0), a wheel URL or a git "
                         "URL@ref for the onstart bootstrap ('wheel' is installed over SSH by fleet/hosts/bring_up.py)")
    if req == "usim" or req.startswith(("usim=", "usim[", "usim<", "usim>")):
        raise ValueError(f"provider.install {req!r}: `usim` on PyPI is an unrelated project; "
                         "this one is `usim-sweeps`")
    is_wheel = req.split("#", 1)[0].split("?", 1)[0].endswith(".whl")
    if "://" in req and not req.startswith("git+") and not is_wheel:
        req = "git+" + req
    return shlex.quote(req)


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
                       "__MAX_RUNTIME__": str(int(settings.max_runtime_s)),
                       "__TRAINER__": trainer(spec.num_gpus, one='"${USIM_CORE:-usim-core}"'),
                       "__CONFIG__": config}.items():
        script = script.replace(key, value)
    return script


def pack(script: str) -> str:
    """A short onstart that unpacks the gzip+base64 script to a file and runs it (not from stdin, so the
    trainer cannot swallow the script's own text)."""
    blob = base64.b64encode(gzip.compress(script.encode(), mtime=0)).decode()
    return ("#!/bin/bash\n# usim-bootstrap (packed)\nW=\"${USIM_WORKDIR:-/workspace}\"; mkdir -p \"$W\"\n"
            f"echo '{blob}' | base64 -d | gunzip > \"$W/usim-bootstrap.sh\" && exec bash \"$W/usim-bootstrap.sh\"\n")


def onstart_script(spec: LaunchSpec, settings: Any) -> str:
    if settings.install.strip() == WHEEL:
        return SSH_ONSTART.replace("__LABEL__", spec.label)
    script = render(spec, settings)
    if len(script) <= ONSTART_MAX:
        return script
    packed = pack(script)
    if len(packed) > ONSTART_MAX:
        raise ValueError(f"the bootstrap for {spec.label} is {len(packed)} characters packed; "
                         f"Vast's onstart limit is {ONSTART_MAX}")
    return packed
