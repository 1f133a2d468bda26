"""What runs on a host, and where: the attempt's run directory on it and the script bring_up starts there
(template: run_script.sh beside this file)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Protocol

TEMPLATE = Path(__file__).with_name("run_script.sh")
IMAGE_ENV = ".usim/image.env"   # the image's environment, saved by the onstart for SSH sessions (home-relative)


class Attempted(Protocol):
    """An attempt as a LaunchSpec or a ledger row names it."""

    sweep: str
    cell: str
    attempt: int


def host_run_dir(a: Attempted) -> str:
    """runs/<sweep>/<cell>/<attempt> under the host's login home (the laptop's absolute path means nothing there)."""
    return f"runs/{a.sweep}/{a.cell}/{a.attempt}"


def trainer(num_gpus: int, one: str = '"${USIM_PY:-python3}" -m usim_core') -> str:
    """What starts `usim_core` on a host of `num_gpus` GPUs (shell words): `one` on one GPU; on more, torchrun
    (torch.distributed.run) with one data-parallel process per GPU, on a free port of its own (--standalone)."""
    if num_gpus <= 1:
        return one
    return (f'"${{USIM_PY:-python3}}" -m torch.distributed.run --standalone --nproc-per-node={int(num_gpus)} '
            "-m usim_core")


def host_run_script(run_dir: str, max_runtime_s: float, num_gpus: int = 1, resume: bool = False) -> str:
    """The script bring_up starts detached over SSH: the trainer (under torchrun on more than one GPU) under
    `timeout`, an `exit` event into events.jsonl and stdout whatever happens (with the last error line of its
    output when it failed), the container stopped at the end (storage bills until the controller destroys it;
    the GPU stops now). `resume`: the trainer continues from the checkpoints in the run dir (`--resume`)."""
    script = TEMPLATE.read_text()
    return (script.replace("__RUN_DIR__", shlex.quote(run_dir)).replace("__MAX_RUNTIME__", str(int(max_runtime_s)))
            .replace("__TRAINER__", trainer(num_gpus)).replace("__RESUME__", " --resume" if resume else ""))
