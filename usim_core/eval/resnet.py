"""The second learned reference: a 1-D ResNet stepper (periodic convolutions on the grid, as in the residual
steppers of the PDE-surrogate literature), u' = u + net([u, log10(nu) + 2]). Its last layer starts at zero, so an
untrained one is persistence."""

from __future__ import annotations

from torch import Tensor, nn

from usim_core.eval.field_stepper import FieldStepper


class _Block(nn.Module):
    def __init__(self, width: int, kernel: int, dilation: int) -> None:
        super().__init__()
        pad = dilation * (kernel // 2)
        self.body = nn.Sequential(
            nn.GELU(), nn.Conv1d(width, width, kernel, padding=pad, dilation=dilation, padding_mode="circular"),
            nn.GELU(), nn.Conv1d(width, width, kernel, padding=pad, dilation=dilation, padding_mode="circular"))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResNetStepper(FieldStepper):
    def __init__(self, mean: float, std: float, width: int = 64, blocks: int = 4, kernel: int = 5) -> None:
        # dilations 1, 2, 4, ... widen the receptive field to the steepest front's travel over a frame and more
        layers = [nn.Conv1d(2, width, kernel, padding=kernel // 2, padding_mode="circular")]
        layers += [_Block(width, kernel, 2 ** (i % 4)) for i in range(blocks)]
        out = nn.Conv1d(width, 1, kernel, padding=kernel // 2, padding_mode="circular")
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        super().__init__(mean, std, nn.Sequential(*layers, nn.GELU(), out))
        self.hparams = {"width": width, "blocks": blocks, "kernel": kernel}
