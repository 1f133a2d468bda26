"""On this shared 2-core machine torch's intra-op threads contend (2 threads ran ~15x slower than 1)."""

import torch

torch.set_num_threads(1)
