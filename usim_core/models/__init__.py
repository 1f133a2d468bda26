"""The latent surrogate: trained codec, token transformer operator, diffusion residual corrector and its
consistency student. `Surrogate` (surrogate.py) is the one object training, checkpoints and evaluation share."""
