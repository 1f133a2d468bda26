"""Subprocess entry for tests: `python synthetic_train.py RUN_DIR [--resume] [--slow]` trains the tiny test
config on the synthetic bundle through the same guarded driver as `usim-core train`."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from train_support import make_bundle, tiny_config  # noqa: E402

from usim_core.events import EventLog  # noqa: E402
from usim_core.train.guard import run_guarded  # noqa: E402
from usim_core.train.run import train_run  # noqa: E402


def main() -> int:
    run_dir = Path(sys.argv[1])
    events = EventLog(run_dir)
    over = {"stages.operator.epochs": 4, "stages.codec.epochs": 1, "stages.diffusion_residual.epochs": 1,
            "stages.consistency_distill.epochs": 1}
    return run_guarded(events, lambda: train_run(tiny_config(**over), run_dir, bundle=make_bundle(),
                                                 events=events, resume="--resume" in sys.argv))


if __name__ == "__main__":
    sys.exit(main())
