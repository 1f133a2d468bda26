"""torchrun entry for tests: the real `usim-core` command line with a failure injected on one rank once every
rank has finished one epoch of one stage (so rank 0 has written its `.last.pt`):

    torchrun --standalone --nproc-per-node=2 ddp_fault.py RANK STAGE EPOCH train --config C --run-dir D ...
"""

from __future__ import annotations

import sys

import torch.distributed as dist

from usim_core.cli import main
from usim_core.train import loop

RANK, STAGE, EPOCH = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
_end_epoch = loop._end_epoch


def _failing_end_epoch(ctx, run, epoch, offset, train_loss) -> None:
    _end_epoch(ctx, run, epoch, offset, train_loss)
    dist.barrier()  # rank 0 has written <stage>.last.pt
    if ctx.ranks.rank == RANK and run.stage == STAGE and epoch == EPOCH:
        raise RuntimeError(f"injected failure on rank {RANK}")


loop._end_epoch = _failing_end_epoch
sys.exit(main(sys.argv[4:]))
