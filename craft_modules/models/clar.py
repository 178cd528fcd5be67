"""CLAR: contrastive and supervised learning of auditory representations.

CLAR (Al-Tahan & Mohsenzadeh, "CLAR: Contrastive Learning of Auditory
Representations", AISTATS 2021) trains an encoder on two augmented views of
each clip with SimCLR's NT-Xent loss, jointly with cross-entropy on the part of
the batch that is labelled. This module holds its building blocks:

* :class:`ClarFrontEnd`: the 3-channel time-frequency input of the
  spectrogram model (log-magnitude STFT on 128 log-spaced frequencies, STFT
  phase, log-mel), computed batched on the waveforms' device.
* :class:`ResNet18_2D` (spectrogram input) and :class:`ResNet18_1D` (raw
  waveforms, kernel 9, as the official ``resnet18_1D``), each average-pooled
  to a 512-d embedding.
* :class:`ClarModel`: front end + encoder + projection head + classifier,
  called as ``model(wavs, lens, output=...)``.
* :func:`nt_xent_loss`, :func:`labelled_cross_entropy` and
  :func:`clar_losses`, which computes the losses of the three training modes
  of the paper (supervised, self-supervised, CLAR).
* :func:`label_fraction_mask`: the seeded choice of the labelled subset for
  the label-fraction experiments.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import contextlib
import math

import torch
import torchaudio
from torch import nn
from torch.nn import functional as F

from craft_modules.distributed import gather_with_grad
from craft_modules.models.inputs import check_waveform_batch
from craft_modules.training.precision import float32_losses

ENCODERS = ("spectrogram", "raw")
OUTPUTS = ("logits", "embedding", "projection", "both", "probe")
CLAR_MODES = ("supervised", "selfsupervised", "clar")


@contextlib.contextmanager
def _no_tf32():
    """Full float32 matmuls on CUDA for the front end's DFT.

    SpeechBrain enables TF32 globally; a DFT computed as a matmul cancels
    large terms, and TF32's 10-bit mantissa would leave a noise floor some
    60-70 dB under the frame energy (weak bins, and their phase, become
    noise), so GPU features would differ from CPU ones.
    """
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


class ClarFrontEnd(nn.Module):
    """CLAR's 3-channel time-frequency input ``(batch, 3, n_bins, frames)``.

    The channels follow ``get_features`` of the official code (nnAudio
    ``STFT(freq_scale='log')`` and ``MelSpectrogram``, 40-8000 Hz):

    0. log-magnitude ``20 log10(max(|S|, amin))`` of the STFT evaluated at
       ``n_bins`` log-spaced frequencies ``f_k = f_min (f_max / f_min) **
       (k / n_bins)``, as nnAudio's log-frequency STFT does (a DFT with one
       kernel per frequency, not a resized linear spectrogram);
    1. the phase of that STFT, ``angle(sum_n x[n] w[n] exp(-2i pi f_k n / sr))``
       in ``[-pi, pi]``, with ``n`` counted from the start of each frame;
    2. log-mel ``10 log10(max(mel power, amin))`` with ``n_bins`` Slaney mel
       filters (librosa's default, used by nnAudio).

    The constant ``-20`` / ``-10`` dB offsets of the official
    ``amplitude_to_DB(..., db_multiplier=1)`` calls are left out (the first
    batch norm of the encoder absorbs them).

    Frames are centred (``center=True`` with reflect padding, as nnAudio and
    ``torch.stft``): ``frames = 1 + samples // hop`` for an even window. The
    window is a periodic Hann window of ``win_ms`` (the paper's 16 ms) or, when
    ``n_fft`` is given, of ``n_fft`` samples as in the official code (2048
    samples, 128 ms). With a short window the 128 log-spaced frequencies below
    a few hundred Hz are closer than the window's resolution (62.5 Hz for
    16 ms), so neighbouring rows of channels 0 and 1 are strongly correlated,
    as in the official features. For the mel channel each windowed frame is
    zero-padded to ``max(window, 2048)`` points before the FFT, so that every
    mel filter down to 40 Hz covers at least one FFT bin (with a 256-point
    FFT the lowest filters would be empty).

    Arguments
    ---------
    sample_rate : int
        Sample rate of the waveforms.
    n_bins : int
        Frequency bins of every channel (128 in CLAR).
    win_ms : float
        STFT window in milliseconds (16 in the paper); ignored when ``n_fft``
        is given.
    hop_ms : float
        STFT hop in milliseconds (8 in the paper and the code).
    n_fft : int, optional
        Window length in samples, overriding ``win_ms`` (2048 in the official
        code).
    f_min : float
        Lowest frequency (40 Hz in the official code).
    f_max : float, optional
        Highest frequency; ``sample_rate / 2`` (8000 Hz) by default.
    amin : float
        Floor of the magnitudes and mel powers before the log (1e-5 in the
        official code).

    Example
    -------
    >>> front_end = ClarFrontEnd()
    >>> feats = front_end(torch.randn(2, 4000))
    >>> feats.shape
    torch.Size([2, 3, 128, 32])
    >>> front_end.n_frames(4000)
    32
    """

    def __init__(
        self,
        sample_rate=16000,
        n_bins=128,
        win_ms=16.0,
        hop_ms=8.0,
        n_fft=None,
        f_min=40.0,
        f_max=None,
        amin=1e-5,
    ):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.n_bins = int(n_bins)
        if n_fft is not None:
            self.win_length = int(n_fft)
        else:
            self.win_length = int(round(float(win_ms) * self.sample_rate / 1000))
        self.hop_length = int(round(float(hop_ms) * self.sample_rate / 1000))
        if self.win_length < 2 or self.hop_length < 1 or self.n_bins < 1:
            raise ValueError(
                f"invalid front end: window {self.win_length} samples, hop "
                f"{self.hop_length} samples, {self.n_bins} bins"
            )
        self.f_min = float(f_min)
        self.f_max = float(f_max) if f_max is not None else self.sample_rate / 2
        if not 0 < self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(
                f"need 0 < f_min < f_max <= sample_rate / 2, got f_min={self.f_min}, "
                f"f_max={self.f_max}, sample_rate={self.sample_rate}"
            )
        self.amin = float(amin)
        self.mel_fft_size = max(self.win_length, 2048)

        window = torch.hann_window(self.win_length, dtype=torch.float64)
        steps = torch.arange(self.n_bins, dtype=torch.float64) / self.n_bins
        freqs = self.f_min * (self.f_max / self.f_min) ** steps
        angle = (
            2
            * math.pi
            * torch.arange(self.win_length, dtype=torch.float64)[:, None]
            * freqs[None, :]
            / self.sample_rate
        )
        # Real and imaginary parts of sum_n x[n] w[n] exp(-i angle[n, k]).
        kernel = torch.cat(
            [window[:, None] * torch.cos(angle), -window[:, None] * torch.sin(angle)],
            dim=1,
        )
        mel = torchaudio.functional.melscale_fbanks(
            self.mel_fft_size // 2 + 1,
            self.f_min,
            self.f_max,
            self.n_bins,
            self.sample_rate,
            norm="slaney",
            mel_scale="slaney",
        )
        self.register_buffer("frequencies", freqs.float(), persistent=False)
        self.register_buffer("window", window.float(), persistent=False)
        self.register_buffer("dft_kernel", kernel.float(), persistent=False)
        self.register_buffer("mel_filters", mel.float(), persistent=False)

    def n_frames(self, samples):
        """Number of frames computed for a clip of ``samples`` samples.

        Arguments
        ---------
        samples : int
            Clip length in samples.

        Returns
        -------
        int
            Number of STFT frames.

        Example
        -------
        >>> ClarFrontEnd().n_frames(16000)
        126
        """
        pad = self.win_length // 2
        return 1 + (samples + 2 * pad - self.win_length) // self.hop_length

    def forward(self, wavs):
        """Computes the 3-channel features of a batch.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``(batch, samples)`` with at least one window of samples.

        Returns
        -------
        torch.Tensor
            Features ``(batch, 3, n_bins, frames)`` in float32: log-magnitude
            (dB), phase (radians), log-mel (dB).

        Example
        -------
        >>> ClarFrontEnd()(torch.zeros(1, 200))
        Traceback (most recent call last):
            ...
        ValueError: clips of 200 samples are shorter than the STFT window of 256 samples (16.0 ms at 16000 Hz)
        """
        if not isinstance(wavs, torch.Tensor) or wavs.dim() != 2:
            shape = tuple(wavs.shape) if isinstance(wavs, torch.Tensor) else None
            raise ValueError(f"wavs must be a (batch, samples) tensor, got {shape}")
        samples = wavs.shape[-1]
        if samples < self.win_length:
            raise ValueError(
                f"clips of {samples} samples are shorter than the STFT window of "
                f"{self.win_length} samples "
                f"({1000 * self.win_length / self.sample_rate} ms at "
                f"{self.sample_rate} Hz)"
            )
        with torch.autocast(device_type=wavs.device.type, enabled=False), _no_tf32():
            pad = self.win_length // 2
            padded = F.pad(wavs.float()[:, None, :], (pad, pad), mode="reflect")[:, 0]
            frames = padded.unfold(-1, self.win_length, self.hop_length)  # (B, T, W)
            dft = frames @ self.dft_kernel  # (B, T, 2 * n_bins)
            real, imag = dft[..., : self.n_bins], dft[..., self.n_bins :]
            magnitude = torch.sqrt(real.square() + imag.square())
            log_magnitude = 20 * torch.log10(magnitude.clamp(min=self.amin))
            phase = torch.atan2(imag, real)
            spectrum = torch.fft.rfft(frames * self.window, n=self.mel_fft_size)
            power = spectrum.real.square() + spectrum.imag.square()
            log_mel = 10 * torch.log10((power @ self.mel_filters).clamp(min=self.amin))
            feats = torch.stack([log_magnitude, phase, log_mel], dim=1)
        return feats.transpose(-1, -2)

    def extra_repr(self):
        """Summarises the settings for ``repr``.

        Returns
        -------
        str
            The main settings.

        Example
        -------
        >>> ClarFrontEnd().extra_repr()
        'sample_rate=16000, n_bins=128, win_length=256, hop_length=128, f_min=40.0, f_max=8000.0'
        """
        return (
            f"sample_rate={self.sample_rate}, n_bins={self.n_bins}, "
            f"win_length={self.win_length}, hop_length={self.hop_length}, "
            f"f_min={self.f_min}, f_max={self.f_max}"
        )


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


class ClarModel(nn.Module):
    """CLAR's network: encoder, projection head and classifier.

    ``encoder="spectrogram"`` computes :class:`ClarFrontEnd` features and
    encodes them with :class:`ResNet18_2D`; ``encoder="raw"`` encodes the
    waveform with :class:`ResNet18_1D`. Both give a 512-d embedding ``h``,
    from which

    * the projection head ``Linear(512, hidden_dim) - ReLU - Linear(hidden_dim,
      proj_dim)`` followed by L2 normalisation gives ``z`` for NT-Xent, and
    * a linear classifier ``Linear(512, n_classes)`` gives the logits.

    (The official code has batch norms in the projection head and puts its
    classifier on the 128-d projection, ``BN - ReLU - Linear(128,
    n_classes)``; the classifier here reads the embedding itself, so it is
    the same head whether the model is trained supervised, self-supervised
    or with CLAR.) Either head can be left out (``proj_dim=None``,
    ``n_classes=None``), so that every parameter receives a gradient in the
    chosen training mode, which DDP requires.

    The clips of a batch are expected to have one common length (CLAR pads
    or crops every clip); ``lens`` is validated but the zero padding is
    encoded like silence, as in CLAR.

    Arguments
    ---------
    encoder : str
        ``spectrogram`` or ``raw``.
    n_classes : int, optional
        Classes of the classifier; None builds no classifier.
    proj_dim : int, optional
        Dimension of the projection (128); None builds no projection head.
    hidden_dim : int
        Hidden width of the projection head (512).
    sample_rate : int
        Sample rate of the waveforms.
    n_bins : int
        Frequency bins of the front end.
    win_ms : float
        Front-end window in milliseconds.
    hop_ms : float
        Front-end hop in milliseconds.
    n_fft : int, optional
        Front-end window in samples, overriding ``win_ms`` (2048 in the
        official code).
    f_min : float
        Lowest front-end frequency.
    f_max : float, optional
        Highest front-end frequency.
    kernel_size : int
        Kernel of the 1-D ResNet blocks.
    widths : sequence of int
        ResNet stage widths (64/128/256/512 for ResNet18); the embedding
        dimension is the last one.

    Example
    -------
    >>> model = ClarModel("spectrogram", n_classes=10)
    >>> wavs = torch.randn(2, 2000)
    >>> model(wavs).shape
    torch.Size([2, 10])
    >>> logits, z = model(wavs, output="both")
    >>> z.shape, torch.allclose(z.norm(dim=1), torch.ones(2))
    (torch.Size([2, 128]), True)
    >>> model(wavs, output="embedding").shape
    torch.Size([2, 512])
    """

    def __init__(
        self,
        encoder="spectrogram",
        n_classes=None,
        proj_dim=128,
        hidden_dim=512,
        sample_rate=16000,
        n_bins=128,
        win_ms=16.0,
        hop_ms=8.0,
        n_fft=None,
        f_min=40.0,
        f_max=None,
        kernel_size=9,
        widths=(64, 128, 256, 512),
    ):
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        self.encoder_type = encoder
        if encoder == "spectrogram":
            self.front_end = ClarFrontEnd(
                sample_rate, n_bins, win_ms, hop_ms, n_fft, f_min, f_max
            )
            self.encoder = ResNet18_2D(3, widths)
        else:
            self.front_end = None
            self.encoder = ResNet18_1D(1, kernel_size, widths)
        self.embed_dim = self.encoder.out_dim
        self.projection = None
        if proj_dim:
            self.projection = nn.Sequential(
                nn.Linear(self.embed_dim, int(hidden_dim)),
                nn.ReLU(inplace=True),
                nn.Linear(int(hidden_dim), int(proj_dim)),
            )
        self.classifier = (
            nn.Linear(self.embed_dim, int(n_classes)) if n_classes else None
        )

    def compile_targets(self):
        """The modules ``compile: True`` compiles: the ResNet encoder."""
        return [self.encoder]

    def forward(self, wavs, lens=None, output="logits"):
        """Encodes a batch and returns the requested output.

        Arguments
        ---------
        wavs : torch.Tensor
            Padded waveforms ``(batch, samples)``.
        lens : torch.Tensor, optional
            Relative lengths ``(batch,)`` (validated only).
        output : str
            ``logits`` ``(batch, n_classes)``; ``embedding`` ``(batch, 512)``;
            ``projection``, the L2-normalised ``(batch, proj_dim)``; or
            ``both``, the tuple ``(logits, projection)`` for CLAR training;
            ``probe``, the same with the logits computed on the detached
            embedding (the classifier learns, the encoder gets no gradient
            from it: linear evaluation of self-supervised features).

        Returns
        -------
        torch.Tensor or tuple
            See ``output``.

        Example
        -------
        >>> model = ClarModel("raw", n_classes=3, proj_dim=None)
        >>> model(torch.randn(2, 2000)).shape
        torch.Size([2, 3])
        >>> model(torch.randn(2, 2000), output="projection")
        Traceback (most recent call last):
            ...
        ValueError: output='projection' needs the projection head, but the model was built with proj_dim=None
        """
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        if output in ("logits", "both", "probe") and self.classifier is None:
            raise ValueError(
                f"output={output!r} needs the classifier, but the model was built "
                "with n_classes=None"
            )
        if output in ("projection", "both", "probe") and self.projection is None:
            raise ValueError(
                f"output={output!r} needs the projection head, but the model was "
                "built with proj_dim=None"
            )
        check_waveform_batch(wavs, lens)
        inputs = wavs if self.front_end is None else self.front_end(wavs)
        embedding = self.encoder(inputs)
        if output == "embedding":
            return embedding
        if output == "logits":
            return self.classifier(embedding)
        projection = F.normalize(self.projection(embedding), dim=-1)
        if output == "projection":
            return projection
        if output == "probe":  # a linear classifier on frozen (detached) features
            return self.classifier(embedding.detach()), projection
        return self.classifier(embedding), projection


def nt_xent_loss(z1, z2, temperature=0.5, global_negatives=True):
    """SimCLR's NT-Xent loss in its 2N x 2N form (CLAR uses ``temperature=0.5``).

    The 2N projections of both views are L2-normalised and compared by
    cosine similarity divided by the temperature. For each of the 2N anchors
    the positive is the other view of the same item and the denominator sums
    over all 2N - 1 other projections (self-similarity excluded); the loss is
    the mean cross-entropy over the 2N anchors, as ``utils.nt_xent_loss`` of
    the official code. Under DDP the candidates are the projections of every
    process (gathered with gradient), so the negatives come from the global
    batch, as in SimCLR; the anchors are this process's. Computed in float32
    with autocast off.

    Arguments
    ---------
    z1 : torch.Tensor
        Projections of the first view ``(N, dim)``.
    z2 : torch.Tensor
        Projections of the second view ``(N, dim)``, row ``i`` paired with
        row ``i`` of ``z1``.
    temperature : float
        Softmax temperature, > 0.
    global_negatives : bool
        Under DDP, takes the candidates from every process.

    Returns
    -------
    torch.Tensor
        Scalar loss (float32): the mean over this process's 2N anchors.

    Example
    -------
    >>> z = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    >>> matched = nt_xent_loss(z, z)
    >>> shuffled = nt_xent_loss(z, z[[1, 2, 3, 0]])
    >>> bool(matched < shuffled)
    True
    """
    if z1.dim() != 2 or z1.shape != z2.shape or z1.shape[0] == 0:
        raise ValueError(
            f"z1 and z2 must be (N, dim) tensors of one shape, got {tuple(z1.shape)} "
            f"and {tuple(z2.shape)}"
        )
    if not float(temperature) > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = z1.shape[0]
    with float32_losses():
        z1 = F.normalize(z1.float(), dim=-1)
        z2 = F.normalize(z2.float(), dim=-1)
        g1, g2, valid, start = z1, z2, None, 0
        if global_negatives:
            g1, valid, start = gather_with_grad(z1)
            g2, _, _ = gather_with_grad(z2)
        m = g1.shape[0]
        similarity = torch.cat([z1, z2]) @ torch.cat([g1, g2]).t() / float(temperature)
        index = torch.arange(n, device=z1.device) + start
        self_columns = torch.cat([index, index + m])
        excluded = torch.zeros_like(similarity, dtype=torch.bool)
        excluded[torch.arange(2 * n, device=z1.device), self_columns] = True
        if valid is not None:
            excluded = excluded | ~torch.cat([valid, valid])[None, :]
        similarity = similarity.masked_fill(excluded, float("-inf"))
        positives = torch.cat([index + m, index])
        return F.cross_entropy(similarity, positives)


def labelled_cross_entropy(logits, targets, labelled_mask=None, multilabel=False):
    """Cross-entropy averaged over the labelled items of a batch only.

    Unlabelled items contribute neither to the sum nor to the count. When no
    item is labelled the result is a zero that still depends on ``logits``
    (so ``backward`` works and nothing is NaN, unlike a mean over an empty
    selection). No host-device synchronisation is needed.

    Arguments
    ---------
    logits : torch.Tensor
        ``(batch, n_classes)``.
    targets : torch.Tensor
        Class indices ``(batch,)`` (unlabelled items may hold -1), class
        probabilities ``(batch, n_classes)``, or with ``multilabel`` multi-hot
        targets ``(batch, n_classes)``.
    labelled_mask : torch.Tensor or list of bool, optional
        ``(batch,)``, True for labelled items. None means ``targets >= 0`` for
        class indices and every item otherwise.
    multilabel : bool
        Binary cross-entropy with logits per class (averaged over the classes
        and the labelled items) instead of the softmax cross-entropy.

    Returns
    -------
    torch.Tensor
        Scalar loss.

    Example
    -------
    >>> logits = torch.randn(3, 4, requires_grad=True)
    >>> targets = torch.tensor([2, -1, 0])
    >>> loss = labelled_cross_entropy(logits, targets)
    >>> expected = torch.nn.functional.cross_entropy(logits[[0, 2]], targets[[0, 2]])
    >>> torch.allclose(loss, expected)
    True
    >>> none = labelled_cross_entropy(logits, targets, torch.zeros(3, dtype=torch.bool))
    >>> float(none.detach()), none.requires_grad
    (0.0, True)
    """
    if logits.dim() != 2:
        raise ValueError(
            f"logits must be (batch, n_classes), got {tuple(logits.shape)}"
        )
    batch = logits.shape[0]
    targets = torch.as_tensor(targets, device=logits.device)
    if targets.shape[0] != batch:
        raise ValueError(f"{targets.shape[0]} targets for {batch} logits")
    class_indices = targets.dim() == 1 and not multilabel
    if labelled_mask is None:
        if class_indices:
            labelled_mask = targets >= 0
        else:
            labelled_mask = torch.ones(batch, dtype=torch.bool, device=logits.device)
    labelled = torch.as_tensor(labelled_mask, device=logits.device).bool()
    if labelled.shape != (batch,):
        raise ValueError(
            f"labelled_mask must have shape ({batch},), got {tuple(labelled.shape)}"
        )
    with float32_losses():
        logits = logits.float()
        if class_indices:
            safe = torch.where(labelled, targets.long(), 0)
            per_item = F.cross_entropy(logits, safe, reduction="none")
        else:
            if targets.shape != logits.shape:
                raise ValueError(
                    f"targets {tuple(targets.shape)} must match logits {tuple(logits.shape)}"
                )
            safe = torch.where(labelled[:, None], targets.float(), 0.0)
            if multilabel:
                per_item = F.binary_cross_entropy_with_logits(
                    logits, safe, reduction="none"
                ).mean(dim=-1)
            else:
                per_item = F.cross_entropy(logits, safe, reduction="none")
        per_item = torch.where(labelled, per_item, 0.0)
        return per_item.sum() / labelled.sum().clamp(min=1)


def label_fraction_mask(ids, fraction, seed=0):
    """Chooses the labelled subset of a training set for a label fraction.

    The ids are sorted, permuted with a ``torch.Generator`` seeded with
    ``seed`` and the first ``max(1, floor(fraction * N + 0.5))`` are kept, so
    the choice depends only on the set of ids, the fraction and the seed (not
    on their order), and for one seed a smaller fraction keeps a subset of a
    larger one.

    Arguments
    ---------
    ids : iterable of str
        Unique ids of the training items.
    fraction : float
        Share of labelled items, in (0, 1] (CLAR's ``perc``).
    seed : int
        Seed of the draw.

    Returns
    -------
    set
        The labelled ids.

    Example
    -------
    >>> ids = [f"clip{i}" for i in range(10)]
    >>> labelled = label_fraction_mask(ids, 0.3, seed=1)
    >>> len(labelled), labelled == label_fraction_mask(ids[::-1], 0.3, seed=1)
    (3, True)
    >>> label_fraction_mask(ids, 0.0)
    Traceback (most recent call last):
        ...
    ValueError: label_fraction must be in (0, 1], got 0.0
    """
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"label_fraction must be in (0, 1], got {fraction}")
    ids = list(ids)
    unique = sorted(set(ids))
    if len(unique) != len(ids):
        raise ValueError(f"ids must be unique: {len(ids) - len(unique)} duplicates")
    if not unique:
        return set()
    keep = max(1, int(math.floor(float(fraction) * len(unique) + 0.5)))
    generator = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(unique), generator=generator)[:keep].tolist()
    return {unique[i] for i in order}


def clar_losses(
    model,
    wavs,
    lens=None,
    targets=None,
    labelled=None,
    augment=None,
    mode="clar",
    temperature=0.5,
    multilabel=False,
):
    """The training losses of one batch for CLAR's three modes.

    * ``supervised``: one augmented view, cross-entropy on its labelled items.
      Returns ``{"loss", "ce"}``.
    * ``selfsupervised``: two augmented views, NT-Xent between their
      projections. Returns ``{"loss", "nt_xent"}``. When the model has a
      classifier and ``targets`` are given, the classifier is also trained
      on the detached embeddings of the labelled items (online linear
      evaluation: the encoder learns from NT-Xent only); the loss then adds
      ``probe_ce``.
    * ``clar``: two augmented views, ``NT-Xent + CE(view 1) + CE(view 2)``
      with the cross-entropies on the labelled items only, as the official
      ``semi_supervised.py``. Returns ``{"loss", "nt_xent", "ce"}`` with
      ``ce`` the sum of the two per-view means (0 when nothing is labelled).

    The views are drawn with ``augment`` (under ``torch.no_grad``; each call
    draws new random parameters) and both go through ``model`` in one forward
    pass of ``2 * batch`` clips, so batch norm sees both views together.

    Arguments
    ---------
    model : ClarModel
        Called as ``model(wavs, lens, output=...)``; needs the classifier for
        ``supervised`` and ``clar``, the projection head for
        ``selfsupervised`` and ``clar``.
    wavs : torch.Tensor
        Padded waveforms ``(batch, samples)``.
    lens : torch.Tensor, optional
        Relative lengths ``(batch,)``.
    targets : torch.Tensor, optional
        Targets as for :func:`labelled_cross_entropy`; not needed in
        ``selfsupervised`` mode.
    labelled : torch.Tensor or list of bool, optional
        ``(batch,)`` labelled flags; see :func:`labelled_cross_entropy`.
    augment : torch.nn.Module, optional
        Waveform augmentation ``(batch, samples) -> (batch, samples)``, e.g.
        an :class:`~craft_modules.augment.waveform.AugmentationChain`; None
        uses the clips as they are.
    mode : str
        ``supervised``, ``selfsupervised`` or ``clar``.
    temperature : float
        NT-Xent temperature (0.5 in CLAR).
    multilabel : bool
        Binary instead of softmax cross-entropy.

    Returns
    -------
    dict of str to torch.Tensor
        Scalar losses; ``loss`` is the one to minimise.

    Example
    -------
    >>> model = ClarModel("raw", n_classes=3, widths=(8, 8, 16, 16))
    >>> wavs, targets = torch.randn(4, 2000), torch.tensor([0, 2, -1, 1])
    >>> losses = clar_losses(model, wavs, None, targets, mode="clar")
    >>> sorted(losses)
    ['ce', 'loss', 'nt_xent']
    >>> torch.allclose(losses["loss"], losses["nt_xent"] + losses["ce"])
    True
    """
    if mode not in CLAR_MODES:
        raise ValueError(f"mode must be one of {CLAR_MODES}, got {mode!r}")
    if mode != "selfsupervised" and targets is None:
        raise ValueError(f"mode={mode!r} needs targets")

    def view():
        if augment is None:
            return wavs
        with torch.no_grad():
            return augment(wavs)

    if mode == "supervised":
        logits = model(view(), lens, output="logits")
        ce = labelled_cross_entropy(logits, targets, labelled, multilabel)
        return {"loss": ce, "ce": ce}

    views = torch.cat([view(), view()])
    both_lens = None if lens is None else torch.cat([lens, lens])
    if mode == "selfsupervised":
        if (
            targets is None
            or getattr(getattr(model, "module", model), "classifier", None) is None
        ):
            z1, z2 = model(views, both_lens, output="projection").chunk(2)
            nt_xent = nt_xent_loss(z1, z2, temperature)
            return {"loss": nt_xent, "nt_xent": nt_xent}
        # Online linear evaluation: the classifier trains on frozen features.
        logits, projection = model(views, both_lens, output="probe")
        z1, z2 = projection.chunk(2)
        nt_xent = nt_xent_loss(z1, z2, temperature)
        probe = _two_view_ce(logits, targets, labelled, multilabel)
        return {"loss": nt_xent + probe, "nt_xent": nt_xent, "probe_ce": probe}

    logits, projection = model(views, both_lens, output="both")
    z1, z2 = projection.chunk(2)
    nt_xent = nt_xent_loss(z1, z2, temperature)
    ce = _two_view_ce(logits, targets, labelled, multilabel)
    return {"loss": nt_xent + ce, "nt_xent": nt_xent, "ce": ce}


def _two_view_ce(logits, targets, labelled, multilabel):
    """CE(view 1) + CE(view 2) on the labelled items of ``(2B, ...)`` logits."""
    targets = torch.as_tensor(targets, device=logits.device)
    if labelled is not None:
        labelled = torch.as_tensor(labelled, device=logits.device)
        labelled = torch.cat([labelled, labelled])
    # Mean over the labelled items of both views, times 2 = CE(view 1) + CE(view 2).
    return 2 * labelled_cross_entropy(
        logits, torch.cat([targets, targets]), labelled, multilabel
    )
