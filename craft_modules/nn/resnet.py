"""CLAR's encoders: ResNet-18 on spectrograms (2-D) and on raw waveforms (1-D).

:class:`ResNet18_2D` takes the 3-channel front end of
:mod:`craft_modules.features.clar_frontend`; :class:`ResNet18_1D` takes raw
waveforms with kernel 9, as the official ``resnet18_1D``. Each is
average-pooled to a 512-d embedding.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

from torch import nn


class BasicBlock(nn.Module):
    """ResNet's basic residual block, for 1-D or 2-D convolutions.

    ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``, the shortcut being a
    strided 1x1 convolution and batch norm when the stride or width changes.

    Arguments
    ---------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.
    stride : int
        Stride of the first convolution (and of the shortcut).
    kernel_size : int
        Kernel size of both convolutions (3 in 2-D, 9 in CLAR's 1-D ResNet).
    dims : int
        1 for ``Conv1d``/``BatchNorm1d``, 2 for ``Conv2d``/``BatchNorm2d``.

    Example
    -------
    >>> block = BasicBlock(8, 16, stride=2, kernel_size=9, dims=1)
    >>> block(torch.randn(2, 8, 100)).shape
    torch.Size([2, 16, 50])
    """

    def __init__(self, in_channels, out_channels, stride=1, kernel_size=3, dims=2):
        super().__init__()
        conv, norm = _conv_norm(dims)
        padding = kernel_size // 2
        self.conv1 = conv(
            in_channels, out_channels, kernel_size, stride, padding, bias=False
        )
        self.bn1 = norm(out_channels)
        self.conv2 = conv(
            out_channels, out_channels, kernel_size, 1, padding, bias=False
        )
        self.bn2 = norm(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                conv(in_channels, out_channels, 1, stride, bias=False),
                norm(out_channels),
            )

    def forward(self, x):
        """Applies the block.

        Arguments
        ---------
        x : torch.Tensor
            ``(batch, in_channels, *spatial)``.

        Returns
        -------
        torch.Tensor
            ``(batch, out_channels, *spatial / stride)``.
        """
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def _conv_norm(dims):
    """Convolution and batch-norm classes for 1-D or 2-D inputs."""
    if dims == 1:
        return nn.Conv1d, nn.BatchNorm1d
    if dims == 2:
        return nn.Conv2d, nn.BatchNorm2d
    raise ValueError(f"dims must be 1 or 2, got {dims}")


class _ResNet(nn.Module):
    """ResNet with basic blocks, global average pooled (see the subclasses)."""

    def __init__(
        self,
        dims,
        in_channels,
        kernel_size,
        pool_kernel,
        pool_padding,
        layers=(2, 2, 2, 2),
        widths=(64, 128, 256, 512),
    ):
        super().__init__()
        if len(layers) != len(widths) or not layers:
            raise ValueError(f"layers {layers} and widths {widths} must match")
        conv, norm = _conv_norm(dims)
        pool = nn.MaxPool1d if dims == 1 else nn.MaxPool2d
        self.stem = nn.Sequential(
            conv(in_channels, widths[0], 7, 2, 3, bias=False),
            norm(widths[0]),
            nn.ReLU(inplace=True),
            pool(pool_kernel, 2, pool_padding),
        )
        stages, channels = [], widths[0]
        for index, (blocks, width) in enumerate(zip(layers, widths)):
            stride = 1 if index == 0 else 2
            stage = [BasicBlock(channels, width, stride, kernel_size, dims)]
            stage += [
                BasicBlock(width, width, 1, kernel_size, dims)
                for _ in range(blocks - 1)
            ]
            stages.append(nn.Sequential(*stage))
            channels = width
        self.layers = nn.Sequential(*stages)
        self.out_dim = channels
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_out", nonlinearity="relu"
                )
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        """Encodes a batch to one pooled vector per item.

        Arguments
        ---------
        x : torch.Tensor
            ``(batch, in_channels, *spatial)``.

        Returns
        -------
        torch.Tensor
            ``(batch, widths[-1])``, averaged over all positions.
        """
        return self.layers(self.stem(x)).flatten(2).mean(dim=-1)


class ResNet18_2D(_ResNet):
    """ImageNet-style ResNet18 on time-frequency inputs, pooled to 512-d.

    The layout of ``torchvision.models.resnet18`` (and pl_bolts' ``resnet18``
    used by the official CLAR code): 7x7 stride-2 stem, 3x3 stride-2 max
    pooling, four stages of two basic blocks with widths 64/128/256/512
    (stride 2 from the second stage), global average pooling, no classifier.
    Trained from scratch.

    Arguments
    ---------
    in_channels : int
        Input channels (3 for :class:`ClarFrontEnd`).
    widths : sequence of int
        Widths of the four stages; the output dimension is the last one.

    Example
    -------
    >>> encoder = ResNet18_2D().eval()
    >>> encoder(torch.randn(1, 3, 128, 32)).shape
    torch.Size([1, 512])
    >>> sum(p.numel() for p in encoder.parameters())
    11176512
    """

    def __init__(self, in_channels=3, widths=(64, 128, 256, 512)):
        super().__init__(2, in_channels, 3, 3, 1, (2, 2, 2, 2), tuple(widths))

    def forward(self, x):
        """Encodes ``(batch, in_channels, freq, time)`` inputs to ``(batch, 512)``.

        Arguments
        ---------
        x : torch.Tensor
            Time-frequency input ``(batch, in_channels, freq, time)``.

        Returns
        -------
        torch.Tensor
            Pooled embeddings ``(batch, widths[-1])``.
        """
        if x.dim() != 4:
            raise ValueError(
                f"ResNet18_2D expects (batch, channels, freq, time), got {tuple(x.shape)}"
            )
        return super().forward(x)


class ResNet18_1D(_ResNet):
    """CLAR's 1-D ResNet18 on raw waveforms, pooled to 512-d.

    As ``resnet18_1D`` of the official code: ``Conv1d(1, 64, 7, stride 2)``
    stem, ``MaxPool1d(9, stride 2, padding 1)``, four stages of two basic
    blocks with kernel-9 convolutions and widths 64/128/256/512 (stride 2
    from the second stage), then global average pooling over time.

    Arguments
    ---------
    in_channels : int
        Input channels (1 for mono waveforms).
    kernel_size : int
        Kernel size of the block convolutions (9 in CLAR).
    widths : sequence of int
        Widths of the four stages; the output dimension is the last one.

    Example
    -------
    >>> encoder = ResNet18_1D().eval()
    >>> encoder(torch.randn(1, 2000)).shape
    torch.Size([1, 512])
    """

    min_samples = 13  # the max pooling needs 7 stem outputs

    def __init__(self, in_channels=1, kernel_size=9, widths=(64, 128, 256, 512)):
        super().__init__(
            1, in_channels, int(kernel_size), 9, 1, (2, 2, 2, 2), tuple(widths)
        )

    def forward(self, x):
        """Encodes waveforms ``(batch, samples)`` or ``(batch, channels, samples)``.

        Arguments
        ---------
        x : torch.Tensor
            Raw waveforms.

        Returns
        -------
        torch.Tensor
            Pooled embeddings ``(batch, widths[-1])``.
        """
        if x.dim() == 2:
            x = x[:, None, :]
        if x.dim() != 3:
            raise ValueError(
                f"ResNet18_1D expects (batch, samples) or (batch, channels, samples), "
                f"got {tuple(x.shape)}"
            )
        if x.shape[-1] < self.min_samples:
            raise ValueError(
                f"clips of {x.shape[-1]} samples are shorter than the "
                f"{self.min_samples} samples the 1-D ResNet needs"
            )
        return super().forward(x)
