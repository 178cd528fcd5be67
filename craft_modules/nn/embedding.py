"""Token embeddings: SSAST's patch embedding and CRAFT's multi-scale audio embedding.

:class:`PatchEmbedding` turns an "image" ``(batch, channels, freq, time)`` into
the token sequence of SSAST: a convolutional patch projection (no padding),
frequency-major token order (time varies fastest), two class tokens (cls and
dist) and a learnable positional embedding, exactly as the official SSAST code
lays them out, so official checkpoints map one to one.

:class:`MSAE` is CRAFT's Multi-Scale Audio Embedding (Eq. 1a-1c of the paper):
one 1-D convolution per kernel size on the raw waveform, each pooled to the
fbank frame rate and stacked as input channels, so the waveform "image" has the
same ``(128, frames)`` shape as the spectrogram and gives the same token grid
for any clip length.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import math

import torch
from torch import nn

from craft_modules.features.fbank import remove_dc_offset
from craft_modules.models.inputs import valid_samples


def grid_shape(input_fdim, input_tdim, fshape, tshape, fstride, tstride):
    """Returns the ``(f_dim, t_dim)`` token grid of a patch convolution.

    Arguments
    ---------
    input_fdim : int
        Number of frequency bins (image height).
    input_tdim : int
        Number of frames (image width).
    fshape : int
        Patch height.
    tshape : int
        Patch width.
    fstride : int
        Stride along frequency.
    tstride : int
        Stride along time.

    Returns
    -------
    tuple of int
        ``(f_dim, t_dim)``.

    Example
    -------
    >>> grid_shape(128, 1024, 16, 16, 10, 10)
    (12, 101)
    """
    if input_fdim < fshape or input_tdim < tshape:
        raise ValueError(
            f"input of {input_fdim}x{input_tdim} is smaller than one {fshape}x{tshape} patch"
        )
    return (input_fdim - fshape) // fstride + 1, (input_tdim - tshape) // tstride + 1


class PatchEmbedding(nn.Module):
    """SSAST patch embedding with two class tokens and a learnable positional embedding.

    Arguments
    ---------
    embed_dim : int
        Token dimension.
    input_fdim : int
        Image height (mel bins).
    input_tdim : int
        Image width (frames).
    in_channels : int
        Image channels: 1 for a spectrogram, one per MSAE scale for waveforms.
    fshape : int
        Patch height (16 for square patches, 128 for frame patches).
    tshape : int
        Patch width (16, or 2 for frame patches).
    fstride : int
        Stride along frequency (``fshape`` in pretraining, 10 in fine-tuning).
    tstride : int
        Stride along time.

    Example
    -------
    >>> emb = PatchEmbedding(embed_dim=32, input_tdim=64)
    >>> image = torch.randn(2, 1, 128, 64)
    >>> patches = emb.patchify(image)
    >>> patches.shape
    torch.Size([2, 32, 32])
    >>> emb.add_tokens(patches).shape
    torch.Size([2, 34, 32])
    """

    n_class_tokens = 2

    def __init__(
        self,
        embed_dim,
        input_fdim=128,
        input_tdim=1024,
        in_channels=1,
        fshape=16,
        tshape=16,
        fstride=16,
        tstride=16,
    ):
        super().__init__()
        self.fshape, self.tshape = int(fshape), int(tshape)
        self.fstride, self.tstride = int(fstride), int(tstride)
        self.in_channels = int(in_channels)
        self.f_dim, self.t_dim = grid_shape(
            input_fdim, input_tdim, fshape, tshape, fstride, tstride
        )
        self.num_patches = self.f_dim * self.t_dim
        # PyTorch's default (kaiming-uniform) init, as SSAST re-creates this conv.
        self.proj = nn.Conv2d(
            in_channels,
            embed_dim,
            (self.fshape, self.tshape),
            (self.fstride, self.tstride),
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(
            torch.zeros(1, self.num_patches + self.n_class_tokens, embed_dim)
        )
        for param in (self.cls_token, self.dist_token, self.pos_embed):
            nn.init.trunc_normal_(param, std=0.02)
        # Saved with the weights so a loader can rebuild the positional grid.
        self.register_buffer("grid", torch.tensor([self.f_dim, self.t_dim]))

    def patchify(self, image):
        """Projects an image ``(B, C, F, T)`` to patch embeddings ``(B, N, D)``, frequency-major."""
        return self.proj(image).flatten(2).transpose(1, 2)

    def add_tokens(self, patches):
        """Prepends cls and dist tokens and adds the positional embedding."""
        batch = patches.shape[0]
        cls = self.cls_token.expand(batch, -1, -1)
        dist = self.dist_token.expand(batch, -1, -1)
        tokens = torch.cat([cls, dist, patches], dim=1)
        return tokens + self.pos_embed

    def unfold(self, image):
        """Returns the raw patch values ``(B, N, C * fshape * tshape)`` in token order.

        These are the targets of masked patch modelling: inside a patch the
        values are ordered channel, frequency, then time (``nn.Unfold``).
        """
        patches = nn.functional.unfold(
            image, (self.fshape, self.tshape), stride=(self.fstride, self.tstride)
        )
        return patches.transpose(1, 2)

    def forward(self, image):
        """Embeds an image into the full token sequence ``(B, N + 2, D)``."""
        return self.add_tokens(self.patchify(image))


def spectrogram_image(fbank):
    """Turns fbank features ``(B, T, F)`` into SSAST's image layout ``(B, 1, F, T)``.

    Arguments
    ---------
    fbank : torch.Tensor
        Features ``(batch, frames, mel bins)``.

    Returns
    -------
    torch.Tensor
        ``(batch, 1, mel bins, frames)``: frequency is the image height.

    Example
    -------
    >>> spectrogram_image(torch.zeros(2, 1024, 128)).shape
    torch.Size([2, 1, 128, 1024])
    """
    return fbank.transpose(1, 2).unsqueeze(1)


ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "abs": None,
    "none": nn.Identity,
}


def window_average(x, kernel, stride):
    """``avg_pool1d(x, kernel, stride)`` computed through block means (same values).

    With ``g = gcd(kernel, stride)``, every window is ``kernel / g`` whole
    blocks of ``g`` samples and windows start every ``stride / g`` blocks, so
    the window averages are an average pooling of the block means. The block
    means read the large input once with a reshape, and their backward is a
    broadcast: ``avg_pool1d``'s backward over overlapping windows instead
    zero-fills and scatters into a buffer as large as ``x``, the largest
    tensor of a PSWaCL step (``(batch, n_bins, samples / conv_stride)`` per
    scale). Only the samples the windows cover are read, as ``avg_pool1d``
    does.

    Arguments
    ---------
    x : torch.Tensor
        ``(batch, channels, length)``.
    kernel : int
        Window length.
    stride : int
        Window hop.

    Returns
    -------
    torch.Tensor
        ``(batch, channels, (length - kernel) // stride + 1)``.

    Example
    -------
    >>> x = torch.randn(2, 3, 1000)
    >>> torch.allclose(window_average(x, 80, 32), torch.nn.functional.avg_pool1d(x, 80, 32), atol=1e-6)
    True
    """
    block = math.gcd(kernel, stride)
    frames = (x.shape[-1] - kernel) // stride + 1
    if frames < 1:
        raise ValueError(f"window_average: {x.shape[-1]} samples < window {kernel}")
    blocks = (frames - 1) * (stride // block) + kernel // block
    means = x[..., : blocks * block].unflatten(-1, (blocks, block)).mean(dim=-1)
    return nn.functional.avg_pool1d(means, kernel // block, stride // block)


class MSAE(nn.Module):
    """Multi-Scale Audio Embedding (CRAFT, Eq. 1a-1b): waveform to a multi-channel image.

    Each scale ``s`` is a 1-D convolution ``theta^s`` with kernel size ``s``
    (odd, centred) from the waveform to ``n_bins`` channels, followed by an
    activation and average pooling over the fbank's analysis windows (25 ms
    windows every 10 ms), so frame ``t`` of every scale covers the same
    samples as fbank frame ``t``. The scales are stacked as image channels,
    giving ``(batch, n_scales, n_bins, target_frames)``: with ``n_bins = 128``
    this is the spectrogram's shape, and the same patch embedding settings
    ("Patchfy", Eq. 1c) give the same token grid. Frames past a clip's length
    are zero, like the fbank's padding.

    The paper writes Eq. 1a as a bare convolution. A convolution followed by
    average pooling and a linear patch projection would be linear in the
    waveform and could not measure energy, so a pointwise nonlinearity follows
    each convolution, as in the multi-scale waveform network the paper builds
    on (Zhu et al., 2018); ``activation="none"`` gives the literal Eq. 1a.

    The paper does not give the convolutions' stride. Evaluated densely
    (``conv_stride=1``), 128 channels per scale at every sample cost more than
    a tiny encoder pass on CPU. Because each output frame is an *average* over
    the 400 samples of its window, ``conv_stride=s`` evaluates the convolution
    every ``s`` samples and averages those ``400 / s`` values: an unbiased
    estimate of the same window average at ``1/s`` of the cost (5x cheaper and
    the default; it must divide the window and the hop).

    Loudness: the MSAE normalises nothing. The paper describes no input or
    output normalisation of the waveform stream (the CRAFT paper, Section 3.1,
    Eq. 1a-1c), and none is applied: the only preprocessing is the DC removal
    the fbank also does, which is linear, and the pointwise activations
    ``relu``/``abs``/``none`` are positively homogeneous, so with zero
    convolution biases the image scales exactly with the waveform
    (``MSAE(10 x) = 10 MSAE(x)``; the biases, learnt, only shift that). The
    spectrogram stream is log-compressed and normalised with dataset
    statistics instead, so the same gain only adds ``ln(100) / (2 std)`` to
    every normalised log-mel value (above the log floor). Loudness therefore reaches the waveform
    tokens multiplicatively and the spectrogram tokens as an offset;
    ``tests/test_embedding.py`` pins both.

    Arguments
    ---------
    kernel_sizes : list of int
        One convolution per kernel size; ``[11, 51, 101]`` in the paper,
        ``[51]`` for the single-scale ablation of Table 5b.
    n_bins : int
        Output channels of each convolution (image height).
    target_frames : int
        Output frames (must match the spectrogram's ``target_frames``).
    sample_rate : int
        Sample rate of the input.
    frame_length_ms : float
        Pooling window in milliseconds (the fbank window).
    frame_shift_ms : float
        Pooling hop in milliseconds (the fbank hop).
    activation : str
        ``relu`` (default), ``gelu``, ``abs`` or ``none``.
    conv_stride : int
        Evaluate the convolutions every ``conv_stride`` samples (1: dense).

    Example
    -------
    >>> msae = MSAE(kernel_sizes=[11, 51, 101], target_frames=100)
    >>> msae(torch.randn(2, 16000), torch.tensor([1.0, 0.6])).shape
    torch.Size([2, 3, 128, 100])
    """

    def __init__(
        self,
        kernel_sizes=(11, 51, 101),
        n_bins=128,
        target_frames=1024,
        sample_rate=16000,
        frame_length_ms=25.0,
        frame_shift_ms=10.0,
        activation="relu",
        conv_stride=5,
    ):
        super().__init__()
        kernel_sizes = [int(k) for k in kernel_sizes]
        if not kernel_sizes or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(
                f"MSAE kernel_sizes must be odd positive integers, got {kernel_sizes}"
            )
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"MSAE activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        self.kernel_sizes = kernel_sizes
        self.n_bins = int(n_bins)
        self.target_frames = int(target_frames)
        self.sample_rate = int(sample_rate)
        self.win_length = int(sample_rate * frame_length_ms / 1000)
        self.hop_length = int(sample_rate * frame_shift_ms / 1000)
        self.conv_stride = int(conv_stride)
        if (
            self.conv_stride < 1
            or self.win_length % self.conv_stride
            or self.hop_length % self.conv_stride
        ):
            raise ValueError(
                f"MSAE conv_stride={conv_stride} must divide the window ({self.win_length}) "
                f"and the hop ({self.hop_length}) in samples"
            )
        self.convs = nn.ModuleList(
            nn.Conv1d(1, self.n_bins, k, stride=self.conv_stride, padding=k // 2)
            for k in kernel_sizes
        )
        self.activation = activation
        self.act = torch.abs if activation == "abs" else ACTIVATIONS[activation]()

    def _activate(self, x):
        """The nonlinearity; ReLU in place on the fresh convolution output.

        The convolution's backward needs its input and weight, not its output,
        so ReLU may overwrite it: one ``(batch, n_bins, samples / conv_stride)``
        buffer less per scale (the largest tensors of a PSWaCL step).
        """
        if self.activation == "relu":
            return torch.relu_(x)
        return self.act(x)

    @property
    def n_scales(self):
        """Number of scales, i.e. image channels."""
        return len(self.kernel_sizes)

    def forward(self, wavs, lens=None):
        """Embeds a padded waveform batch into ``(B, n_scales, n_bins, target_frames)``.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``(batch, samples)``.
        lens : torch.Tensor, optional
            Relative lengths ``(batch,)``.

        Returns
        -------
        torch.Tensor
            The multi-scale waveform image.
        """
        if lens is None:  # inputs are checked by the model's forward
            lens = torch.ones(wavs.shape[0], device=wavs.device)
        n_valid = valid_samples(lens, wavs.shape[1])
        needed = self.win_length + self.hop_length * (self.target_frames - 1)
        x = remove_dc_offset(wavs, n_valid)[:, :needed]
        if x.shape[1] < self.win_length:
            x = nn.functional.pad(x, (0, self.win_length - x.shape[1]))
        x = x.unsqueeze(1)
        kernel = self.win_length // self.conv_stride
        stride = self.hop_length // self.conv_stride
        scales = [
            window_average(self._activate(conv(x)), kernel, stride)
            for conv in self.convs
        ]
        image = torch.stack(scales, dim=1)  # (B, S, n_bins, frames)
        frames = (
            torch.div(n_valid - self.win_length, self.hop_length, rounding_mode="floor")
            + 1
        )
        keep = (
            torch.arange(image.shape[-1], device=wavs.device)[None, :] < frames[:, None]
        )
        image = image * keep[:, None, None, :]
        missing = self.target_frames - image.shape[-1]
        if missing > 0:
            image = nn.functional.pad(image, (0, missing))
        return image[..., : self.target_frames]
