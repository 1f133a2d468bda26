"""torchrun entry for tests: the real `usim-core` command line, with one rank starting late (it reaches the
config checks after the others have refused the config and exited):

    torchrun --standalone --nproc-per-node=2 ddp_slow.py RANK SECONDS train --config C --run-dir D ...
"""

from __future__ import annotations

import os
import sys
import time

from usim_core.cli import main

RANK, SECONDS = int(sys.argv[1]), float(sys.argv[2])
if int(os.environ.get("RANK", "0")) == RANK:
    time.sleep(SECONDS)
sys.exit(main(sys.argv[3:]))
