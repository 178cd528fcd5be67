"""CLAR's waveform augmentations, batched on the waveforms' device.

CLAR (Al-Tahan & Mohsenzadeh, AISTATS 2021, Section 3) augments each
clip with a random subset of six transformations, each applied with
probability 0.5 (``torchvision.transforms.RandomApply``). The official code
does this per clip with librosa and numpy; here every transformation works on a
padded ``(batch, samples)`` float tensor, draws its random values per item
with the global torch RNG (so :func:`speechbrain.utils.seed_everything`
controls them) and keeps the shape, dtype and device of its input:

* :class:`PitchShift`: phase-vocoder time stretch then FFT resampling
  (librosa's method), in whole semitones within +-15 by default.
* :class:`Fade`: a fade-in and a fade-out, each up to half the clip, with a
  linear, logarithmic or exponential curve.
* :class:`WhiteNoise` and :class:`ColouredNoise`: Gaussian white noise, or
  pink (1/f) / brown (1/f^2) noise, at a signal-to-noise ratio drawn in
  0-20 dB.
* :class:`TimeMask`: zeroes a contiguous segment of 1/8 of the clip.
* :class:`TimeShift`: a circular shift of up to +-0.5 s.
* :class:`TimeStretch`: a phase-vocoder stretch by a rate in [0.5, 1.5],
  cropped or zero-padded to the original length.

:class:`AugmentationChain` applies a list of them in order. Every module
has SpeechBrain's waveform signature ``(wavs, lengths) -> wavs``, so the
chain, its members and the CLAR view slot of the recipes' YAML files
(``augmentation``) also take SpeechBrain's augmenters
(:mod:`speechbrain.augment.time_domain`, or an
:class:`~speechbrain.augment.augmenter.Augmenter`, which returns
``(wavs, lengths)``); :func:`augment_waveforms` makes the call. The modules are
active in training and evaluation mode alike: the caller decides when to
augment (CLAR augments both views of every training batch). Each module's
``prob`` is the probability that an item of the batch is transformed; the
items it selects are drawn on the host with
:func:`craft_modules.augment.spectrogram.draw_item_mask` (see
:func:`host_values`), so that augmenting a batch on a GPU reads nothing
back from it. The waveforms are
not checked here: the model checks its input once, at its forward
(:func:`craft_modules.models.inputs.check_waveform_batch`); the
augmentations' parameters are checked when they are built.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import math

import torch
import torchaudio
from speechbrain.utils.callchains import lengths_arg_name

from craft_modules.augment.spectrogram import check_unit_interval, draw_item_mask
from craft_modules.models import inputs

FADE_SHAPES = ("linear", "logarithmic", "exponential", "quarter_sine", "half_sine")
NOISE_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def _check_range(low, high, low_name, high_name):
    """Raises ValueError unless ``low <= high``; returns both as floats."""
    low, high = float(low), float(high)
    if not low <= high:
        raise ValueError(f"{low_name} ({low}) must not exceed {high_name} ({high})")
    return low, high


def _uniform(low, high, size, device):
    """Uniform draws in ``[low, high]`` (exactly ``low`` when they are equal)."""
    return low + (high - low) * torch.rand(size, device=device)


def host_values(draw):
    """The values of a random draw made on the host, as a list.

    The augmentations draw on the host what decides the shapes of their work
    (which items they transform, PitchShift's groups of equal shifts), with
    the global CPU generator, so that no value is read back from the device:
    on a GPU, reading a device draw (``bool(mask.any())``, ``nonzero``,
    ``unique``) would wait for every queued kernel of the training step.

    Example
    -------
    >>> host_values(torch.tensor([True, False]))
    [True, False]
    """
    return draw.tolist()


def device_index(items, device):
    """Item indices (a list) as an int64 tensor on ``device``, copied without a sync.

    Example
    -------
    >>> device_index([0, 2], "cpu")
    tensor([0, 2])
    """
    index = torch.tensor(items, dtype=torch.long)
    if torch.device(device).type == "cuda":
        index = index.pin_memory()
    return index.to(device, non_blocking=True)


class _ItemwiseAugmentation(torch.nn.Module):
    """Base class: selects items with ``prob`` and transforms only those.

    Subclasses implement ``_augment(wavs)`` on a float32 or float64
    ``(n, samples)`` tensor of the selected items and return a tensor of the
    same shape. The forward has SpeechBrain's signature
    ``(wavs, lengths) -> wavs`` (that of
    :class:`speechbrain.augment.time_domain.DropChunk`), so these modules and
    SpeechBrain's augmenters fill the same YAML slot.

    Arguments
    ---------
    prob : float
        Probability that an item of the batch is transformed.
    """

    def __init__(self, prob=0.5):
        super().__init__()
        self.prob = check_unit_interval(prob, "prob")

    def forward(self, wavs, lengths=None):
        """Transforms a random subset of the batch.

        Arguments
        ---------
        wavs : torch.Tensor
            Padded waveforms ``(batch, samples)``, floating point; checked by
            the model that reads them, not here.
        lengths : torch.Tensor, optional
            Relative lengths ``(batch,)`` (SpeechBrain's signature). They do
            not change the draws: each transformation acts on the whole padded
            clip, as the official code acts on its fixed-length clips.

        Returns
        -------
        torch.Tensor
            The augmented batch (a new tensor), with the shape, dtype and
            device of ``wavs``; ``wavs`` itself when no item is selected.
        """
        # Drawn on the host: the number of selected items sets the work's shape.
        selected = host_values(draw_item_mask(wavs.shape[0], self.prob))
        items = [i for i, chosen in enumerate(selected) if chosen]
        if not items:
            return wavs
        work_dtype = wavs.dtype if wavs.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=wavs.device.type, enabled=False):
            if len(items) == len(selected):
                return self._augment(wavs.to(work_dtype)).to(wavs.dtype)
            index = device_index(items, wavs.device)
            changed = self._augment(wavs.index_select(0, index).to(work_dtype))
            return wavs.index_copy(0, index, changed.to(wavs.dtype))

    def _augment(self, wavs):
        raise NotImplementedError


def _stft_window(n_fft, device, dtype):
    """The periodic Hann window used by every STFT of this module."""
    return torch.hann_window(n_fft, device=device, dtype=dtype)


def _phase_vocoder(spec, rates, n_frames, hop_length):
    """Batched phase vocoder with one stretch rate per item.

    A per-item version of :func:`torchaudio.functional.phase_vocoder`: output
    frame ``j`` of item ``b`` interpolates the input magnitudes at time step
    ``j * rates[b]`` and accumulates the input's phase advance, so the pitch
    is kept while the duration is divided by the rate. Output frames past the
    end of the input are silent.

    Arguments
    ---------
    spec : torch.Tensor
        Complex STFT ``(batch, freq, frames)``.
    rates : torch.Tensor
        Stretch rates ``(batch,)``; > 1 speeds up, < 1 slows down.
    n_frames : int
        Number of output frames.
    hop_length : int
        Hop of the STFT in samples.

    Returns
    -------
    torch.Tensor
        Complex STFT ``(batch, freq, n_frames)``.
    """
    batch, n_freq, frames = spec.shape
    real_dtype = spec.real.dtype
    steps = torch.arange(n_frames, device=spec.device, dtype=real_dtype)
    steps = steps[None, :] * rates.to(real_dtype)[:, None]  # (B, n_frames)
    inside = steps < frames
    alphas = torch.remainder(steps, 1.0)
    # Two silent frames after the end: index ``frames`` and ``frames + 1``.
    padded = torch.nn.functional.pad(spec, [0, 2])
    index0 = torch.where(inside, steps.floor().long(), frames).clamp(max=frames)
    index1 = (index0 + 1).clamp(max=frames + 1)
    spec0 = padded.gather(2, index0[:, None, :].expand(batch, n_freq, n_frames))
    spec1 = padded.gather(2, index1[:, None, :].expand(batch, n_freq, n_frames))

    phase_advance = torch.linspace(
        0, math.pi * hop_length, n_freq, device=spec.device, dtype=real_dtype
    )[None, :, None]
    phase = spec1.angle() - spec0.angle() - phase_advance
    phase = phase - 2 * math.pi * torch.round(phase / (2 * math.pi))
    phase = phase + phase_advance
    phase = torch.cat([spec[:, :, :1].angle(), phase[:, :, :-1]], dim=-1)
    phase = torch.cumsum(phase, dim=-1)
    magnitude = (
        alphas[:, None, :] * spec1.abs() + (1 - alphas[:, None, :]) * spec0.abs()
    )
    magnitude = magnitude * inside[:, None, :]
    phase = _lock_phases(magnitude, phase, spec0.angle())
    return torch.polar(magnitude, phase)


def _lock_phases(magnitude, phase, input_phase):
    """Identity phase locking (Laroche & Dolson, 1999) of vocoder frames.

    The plain phase vocoder propagates the phase of every bin on its own.
    When the rate is below 1 the same input phase difference is added to
    several output frames, so the bins around a spectral peak drift away
    from the phase relations of the input and partly cancel (a stretched
    tone comes out 3 to 15 dB quieter with torchaudio's ``phase_vocoder``).
    Here every bin is assigned to the nearest magnitude peak of its frame and
    gets the peak's propagated phase plus its own input phase offset to the
    peak, ``phase[k] = phase[p] + input[k] - input[p]``; peak bins keep their
    propagated phase.

    Arguments
    ---------
    magnitude : torch.Tensor
        Output magnitudes ``(batch, freq, frames)``.
    phase : torch.Tensor
        Propagated output phases, same shape.
    input_phase : torch.Tensor
        Phases of the input frames the output frames were read from.

    Returns
    -------
    torch.Tensor
        Locked phases, same shape.
    """
    n_freq = magnitude.shape[1]
    left = torch.nn.functional.pad(magnitude, [0, 0, 1, 0], value=-1.0)[:, :-1]
    right = torch.nn.functional.pad(magnitude, [0, 0, 0, 1], value=-1.0)[:, 1:]
    is_peak = (magnitude > left) & (magnitude >= right)
    bins = torch.arange(n_freq, device=magnitude.device)[None, :, None]
    bins = bins.expand_as(magnitude)
    previous = torch.where(is_peak, bins, -1).cummax(dim=1).values
    following = torch.where(is_peak, bins, n_freq).flip(1).cummin(dim=1).values
    following = following.flip(1)
    has_previous, has_following = previous >= 0, following < n_freq
    take_previous = has_previous & (
        ~has_following | (bins - previous <= following - bins)
    )
    peak = torch.where(
        take_previous, previous, torch.where(has_following, following, bins)
    )
    return phase.gather(1, peak) + input_phase - input_phase.gather(1, peak)


def _overlap_add(frames, hop_length):
    """Sums frames ``(batch, n_fft, n_frames)`` placed ``hop_length`` samples apart."""
    batch, n_fft, n_frames = frames.shape
    if n_fft % hop_length:
        length = n_fft + hop_length * (n_frames - 1)
        return torch.nn.functional.fold(
            frames, (1, length), (1, n_fft), stride=(1, hop_length)
        ).flatten(1)
    # The hop divides the frame: r shifted sums of hop-long pieces.
    ratio = n_fft // hop_length
    pieces = frames.reshape(batch, ratio, hop_length, n_frames)
    out = frames.new_zeros(batch, hop_length, n_frames + ratio - 1)
    for k in range(ratio):
        out[:, :, k : k + n_frames] += pieces[:, k]
    return out.transpose(1, 2).reshape(batch, -1)


def inverse_stft(spec, n_fft, hop_length, window, length):
    """``torch.istft(spec, ..., center=True, length=length)`` without its host check.

    ``torch.istft`` verifies the window's NOLA condition by reading a value
    back from the device, a host-device sync in every training step that
    augments on a GPU. The same inverse is computed here by windowed
    overlap-add divided by the window's summed square, which is positive
    everywhere for the periodic Hann windows of this module with a hop of at
    most half the window (the NOLA condition holds); the result equals
    ``torch.istft``'s up to float rounding.

    Arguments
    ---------
    spec : torch.Tensor
        One-sided complex STFT ``(batch, n_fft // 2 + 1, frames)``.
    n_fft : int
        Frame size.
    hop_length : int
        Hop between frames, at most ``n_fft // 2``.
    window : torch.Tensor
        The analysis window ``(n_fft,)``.
    length : int
        Samples of the output.

    Returns
    -------
    torch.Tensor
        Waveforms ``(batch, length)``.

    Example
    -------
    >>> wavs, window = torch.randn(2, 4000), torch.hann_window(512)
    >>> spec = torch.stft(wavs, 512, 128, window=window, return_complex=True)
    >>> out = inverse_stft(spec, 512, 128, window, 4000)
    >>> reference = torch.istft(spec, 512, 128, window=window, length=4000)
    >>> bool(torch.allclose(out, reference, atol=1e-5))
    True
    """
    if not 0 < hop_length <= n_fft // 2:
        raise ValueError(
            f"hop_length must be in (0, n_fft // 2 = {n_fft // 2}], got {hop_length}"
        )
    frames = torch.fft.irfft(spec, n=n_fft, dim=1) * window[:, None]
    n_frames = frames.shape[-1]
    envelope = _overlap_add(
        (window * window)[None, :, None].expand(1, n_fft, n_frames), hop_length
    )
    start = n_fft // 2  # center=True: the frames were centred on the samples
    signal = _overlap_add(frames, hop_length)[:, start : start + length]
    envelope = envelope[:, start : start + length]
    missing = length - signal.shape[1]
    if missing > 0:  # asked for more than the frames cover: zeros, as torch.istft
        signal = torch.nn.functional.pad(signal, (0, missing))
        envelope = torch.nn.functional.pad(envelope, (0, missing), value=1.0)
    return signal / envelope.clamp_min(1e-11)


def time_stretch(wavs, rates, out_length, n_fft=512, hop_length=None):
    """Phase-vocoder time stretch of a batch, one rate per item.

    The pitch is kept and the duration is divided by the rate, as
    ``librosa.effects.time_stretch``. The output has ``out_length`` samples:
    an item whose stretched duration ``round(samples / rate)`` is longer is
    cropped, a shorter one is zero-padded.

    Arguments
    ---------
    wavs : torch.Tensor
        Waveforms ``(batch, samples)``, float32 or float64, with
        ``samples >= n_fft``.
    rates : torch.Tensor or float
        Stretch rates ``(batch,)`` (or one for all); > 1 speeds up.
    out_length : int
        Length of the output in samples.
    n_fft : int
        STFT size (Hann window of that length).
    hop_length : int, optional
        STFT hop; ``n_fft // 4`` by default.

    Returns
    -------
    torch.Tensor
        Stretched waveforms ``(batch, out_length)``.

    Example
    -------
    >>> wavs = torch.randn(2, 4000)
    >>> time_stretch(wavs, torch.tensor([0.5, 2.0]), 4000).shape
    torch.Size([2, 4000])
    """
    batch, samples = wavs.shape
    if samples < n_fft:
        raise ValueError(
            f"clips of {samples} samples are shorter than the {n_fft}-sample "
            "STFT window of the phase vocoder"
        )
    hop_length = hop_length or n_fft // 4
    if isinstance(rates, (int, float)):  # one rate, checked on the host
        if not rates > 0:
            raise ValueError(f"stretch rates must be > 0, got {rates}")
        rates = torch.full((batch,), float(rates), device=wavs.device, dtype=wavs.dtype)
    else:
        rates = torch.as_tensor(rates).to(wavs.device, wavs.dtype).expand(batch)
        if inputs._values_checked_on_host(wavs):
            if bool((rates <= 0).any()):
                raise ValueError(f"stretch rates must be > 0, got {rates.tolist()}")
        else:  # reading the check on the host would be a sync in every training step
            torch._assert_async((rates > 0).all(), "stretch rates must be > 0")
    window = _stft_window(n_fft, wavs.device, wavs.dtype)
    spec = torch.stft(
        wavs, n_fft, hop_length, window=window, center=True, return_complex=True
    )
    n_frames = 1 + out_length // hop_length
    stretched = _phase_vocoder(spec, rates, n_frames, hop_length)
    out = inverse_stft(stretched, n_fft, hop_length, window, out_length)
    # Exact zero padding after the stretched duration of faster items.
    stretched_length = torch.round(samples / rates).long()
    positions = torch.arange(out_length, device=wavs.device)
    return out * (positions[None, :] < stretched_length[:, None])


def fft_resample(wavs, new_length):
    """Band-limited resampling of a batch to ``new_length`` samples via the FFT.

    Like ``scipy.signal.resample``: the spectrum is truncated (which removes
    the frequencies above the new Nyquist frequency, so nothing aliases) or
    zero-padded, and the amplitude is kept. The signal is treated as
    periodic, so a discontinuity between its end and its start rings a little
    at both edges.

    Arguments
    ---------
    wavs : torch.Tensor
        Waveforms ``(batch, samples)``.
    new_length : int
        Output length; the playback duration at the original sample rate is
        multiplied by ``new_length / samples`` and every frequency by the
        inverse.

    Returns
    -------
    torch.Tensor
        Resampled waveforms ``(batch, new_length)``.

    Example
    -------
    >>> wavs = torch.sin(2 * torch.pi * 4 * torch.arange(100) / 100)[None]
    >>> out = fft_resample(wavs, 50)
    >>> out.shape
    torch.Size([1, 50])
    >>> torch.allclose(out[0], wavs[0, ::2], atol=1e-5)
    True
    """
    samples = wavs.shape[-1]
    spectrum = torch.fft.rfft(wavs, dim=-1)
    n_bins = new_length // 2 + 1
    if n_bins <= spectrum.shape[-1]:
        spectrum = spectrum[..., :n_bins]
    else:
        spectrum = torch.nn.functional.pad(spectrum, [0, n_bins - spectrum.shape[-1]])
    return torch.fft.irfft(spectrum, n=new_length, dim=-1) * (new_length / samples)


class PitchShift(_ItemwiseAugmentation):
    """Random pitch shift by a whole number of semitones (CLAR's ``ps``).

    The official code calls ``librosa.effects.pitch_shift`` with
    ``n_steps = randint(-15, 15)``. Here the shift of each selected item is
    drawn uniformly from the grid ``min_semitones, min_semitones + step, ...,
    max_semitones`` (the integers -15 to 15 by default), and items with the
    same shift are processed together, like librosa: a phase-vocoder time
    stretch by ``ratio = 2 ** (n / 12)`` (longer for a higher pitch, same
    pitch), then :func:`fft_resample` back to the original number of samples,
    which multiplies every frequency by ``ratio``. The output has exactly the
    input's length; a shift of 0 leaves the item unchanged.

    Arguments
    ---------
    sample_rate : int
        Sample rate of the clips; sets the default STFT size (about 32 ms,
        512 samples at 16 kHz).
    max_semitones : float
        Upper end of the shift range (15 in CLAR).
    prob : float
        Probability that an item is shifted.
    min_semitones : float, optional
        Lower end of the shift range; ``-max_semitones`` by default. Set it
        equal to ``max_semitones`` for a fixed shift.
    step : float
        Spacing of the grid of shifts, in semitones (fewer distinct shifts
        mean fewer groups to process).
    n_fft : int, optional
        STFT size of the phase vocoder (hop ``n_fft // 4``).

    Example
    -------
    >>> shift = PitchShift(16000, min_semitones=12, max_semitones=12, prob=1.0)
    >>> tone = torch.sin(2 * torch.pi * 500 * torch.arange(8000) / 16000)[None]
    >>> out = shift(tone, torch.ones(1))
    >>> out.shape
    torch.Size([1, 8000])
    >>> int(torch.fft.rfft(out[0]).abs().argmax()) * 16000 // 8000  # Hz
    1000
    """

    def __init__(
        self,
        sample_rate=16000,
        max_semitones=15.0,
        prob=0.5,
        min_semitones=None,
        step=1.0,
        n_fft=None,
    ):
        super().__init__(prob)
        self.sample_rate = int(sample_rate)
        if min_semitones is None:
            min_semitones = -float(max_semitones)
        self.min_semitones, self.max_semitones = _check_range(
            min_semitones, max_semitones, "min_semitones", "max_semitones"
        )
        if not float(step) > 0:
            raise ValueError(f"step must be > 0, got {step}")
        self.step = float(step)
        self.n_steps = int(
            math.floor((self.max_semitones - self.min_semitones) / self.step + 1e-9)
        )
        if n_fft is None:
            n_fft = 2 ** round(math.log2(0.032 * self.sample_rate))
        self.n_fft = int(n_fft)

    def _augment(self, wavs):
        batch, samples = wavs.shape
        # The shifts are drawn on the host: items are grouped by shift.
        grid = host_values(torch.randint(0, self.n_steps + 1, (batch,)))
        groups = {}
        for item, step in enumerate(grid):
            groups.setdefault(self.min_semitones + self.step * step, []).append(item)
        out = wavs
        for value, items in sorted(groups.items()):
            if value == 0:
                continue
            index = device_index(items, wavs.device)
            ratio = 2.0 ** (value / 12.0)
            long_length = max(1, round(samples * ratio))
            # Stretch to samples * ratio (pitch kept), then squeeze it back
            # into ``samples``: every frequency is multiplied by the ratio.
            stretched = time_stretch(
                wavs.index_select(0, index),
                samples / long_length,
                long_length,
                self.n_fft,
            )
            out = out.index_copy(0, index, fft_resample(stretched, samples))
        return out

    def extra_repr(self):
        """Summarises the settings for ``repr``.

        Returns
        -------
        str
            The main constructor arguments.

        Example
        -------
        >>> PitchShift(16000).extra_repr()
        'sample_rate=16000, semitones=[-15.0, 15.0], step=1.0, prob=0.5'
        """
        return (
            f"sample_rate={self.sample_rate}, "
            f"semitones=[{self.min_semitones}, {self.max_semitones}], "
            f"step={self.step}, prob={self.prob}"
        )


def _fade_curve(t, shape, fade_in):
    """Gain curves of :class:`torchaudio.transforms.Fade` for a progress ``t``.

    ``t`` runs from 0 at the start of the fade to 1 at its end; ``shape`` holds
    one index into :data:`FADE_SHAPES` per row of ``t``.
    """
    shape = shape[:, None].expand_as(t)
    if fade_in:
        curves = (
            t,
            torch.log10(0.1 + t) + 1,
            torch.pow(2.0, (t - 1) * 5),
            torch.sin(t * math.pi / 2),
            torch.sin(t * math.pi - math.pi / 2) / 2 + 0.5,
        )
    else:
        curves = (
            1 - t,
            torch.log10(1.1 - t) + 1,
            torch.pow(2.0, -t * 5),
            torch.sin(t * math.pi / 2 + math.pi / 2),
            torch.sin(t * math.pi + math.pi / 2) / 2 + 0.5,
        )
    gain = torch.zeros_like(t)
    for index, curve in enumerate(curves):
        gain = torch.where(shape == index, curve, gain)
    return gain


class Fade(_ItemwiseAugmentation):
    """Random fade-in and fade-out (CLAR's ``fd``).

    For each selected item, the fade-in and fade-out lengths are drawn
    independently and uniformly in ``[0, max_fraction * samples)`` and one
    shape is drawn uniformly from ``shapes`` for both ends. The gain curves
    are those of :class:`torchaudio.transforms.Fade`, built per item so that
    the lengths can differ across the batch, and clipped to [0, 1] as in the
    official CLAR code (torchaudio's logarithmic curve slightly overshoots 1).
    Gains rise monotonically over the fade-in and fall over the fade-out.

    Arguments
    ---------
    max_fraction : float
        Longest fade, as a fraction of the clip (0.5 in CLAR).
    shapes : sequence of str
        Curves to draw from: ``linear``, ``logarithmic``, ``exponential``
        (the paper's three, the default), ``quarter_sine``, ``half_sine``.
    prob : float
        Probability that an item is faded.

    Example
    -------
    >>> fade = Fade(shapes=("linear",), prob=1.0)
    >>> gains = fade(torch.ones(2, 1000), torch.ones(2))
    >>> gains.shape
    torch.Size([2, 1000])
    >>> bool((gains[:, :500].diff(dim=1) >= 0).all())
    True
    """

    def __init__(
        self,
        max_fraction=0.5,
        shapes=("linear", "logarithmic", "exponential"),
        prob=0.5,
    ):
        super().__init__(prob)
        self.max_fraction = check_unit_interval(max_fraction, "max_fraction")
        if isinstance(shapes, str):
            shapes = (shapes,)
        shapes = tuple(shapes)
        unknown = [s for s in shapes if s not in FADE_SHAPES]
        if not shapes or unknown:
            raise ValueError(
                f"shapes must be a non-empty subset of {FADE_SHAPES}, got {shapes}"
            )
        self.shapes = shapes
        self.register_buffer(
            "_shape_ids",
            torch.tensor([FADE_SHAPES.index(s) for s in shapes]),
            persistent=False,
        )

    def _augment(self, wavs):
        batch, samples = wavs.shape
        device = wavs.device
        longest = self.max_fraction * samples
        in_len = (torch.rand(batch, device=device) * longest).long()
        out_len = (torch.rand(batch, device=device) * longest).long()
        pick = torch.randint(0, len(self.shapes), (batch,), device=device)
        shape = self._shape_ids.to(device)[pick]
        positions = torch.arange(samples, device=device, dtype=wavs.dtype)[None, :]
        # linspace(0, 1, n) progress within each fade, as torchaudio.
        in_t = positions / (in_len[:, None] - 1).clamp(min=1)
        gain_in = _fade_curve(in_t.clamp(max=1), shape, fade_in=True)
        gain_in = torch.where(positions < in_len[:, None], gain_in, 1.0)
        out_start = samples - out_len[:, None]
        out_t = (positions - out_start) / (out_len[:, None] - 1).clamp(min=1)
        gain_out = _fade_curve(out_t.clamp(0, 1), shape, fade_in=False)
        gain_out = torch.where(positions >= out_start, gain_out, 1.0)
        return wavs * (gain_in * gain_out).clamp(0, 1)

    def extra_repr(self):
        """Summarises the settings for ``repr``.

        Returns
        -------
        str
            The constructor arguments.

        Example
        -------
        >>> Fade().extra_repr()
        "max_fraction=0.5, shapes=('linear', 'logarithmic', 'exponential'), prob=0.5"
        """
        return (
            f"max_fraction={self.max_fraction}, shapes={self.shapes}, prob={self.prob}"
        )


def _scale_to_snr(wavs, noise, snr_db):
    """Adds ``noise`` scaled so that each row's SNR is ``snr_db`` (in dB).

    torchaudio's ``add_noise``: the ratio of the clip's energy (over all its
    samples) to the scaled noise's, using the drawn noise itself so that the
    ratio is exact; a silent clip stays silent.
    """
    return torchaudio.functional.add_noise(wavs, noise, snr_db)


class WhiteNoise(_ItemwiseAugmentation):
    """Gaussian white noise at a random SNR (CLAR's ``wn``).

    The SNR of each selected item is drawn uniformly in
    ``[min_snr_db, max_snr_db]`` (the official code draws integers 0-19) and
    the noise is scaled to that ratio of the clip's mean power.

    Arguments
    ---------
    min_snr_db : float
        Lowest SNR in dB.
    max_snr_db : float
        Highest SNR in dB.
    prob : float
        Probability that an item gets noise.

    Example
    -------
    >>> noise = WhiteNoise(min_snr_db=10, max_snr_db=10, prob=1.0)
    >>> wavs = torch.randn(2, 16000)
    >>> added = noise(wavs, torch.ones(2)) - wavs
    >>> snr = 10 * torch.log10(wavs.pow(2).mean(1) / added.pow(2).mean(1))
    >>> torch.allclose(snr, torch.full((2,), 10.0), atol=1e-3)
    True
    """

    def __init__(self, min_snr_db=0.0, max_snr_db=20.0, prob=0.5):
        super().__init__(prob)
        self.min_snr_db, self.max_snr_db = _check_range(
            min_snr_db, max_snr_db, "min_snr_db", "max_snr_db"
        )

    def _augment(self, wavs):
        snr = _uniform(self.min_snr_db, self.max_snr_db, wavs.shape[0], wavs.device)
        return _scale_to_snr(wavs, torch.randn_like(wavs), snr.to(wavs.dtype))

    def extra_repr(self):
        """Summarises the settings for ``repr``.

        Returns
        -------
        str
            The constructor arguments.

        Example
        -------
        >>> WhiteNoise().extra_repr()
        'snr_db=[0.0, 20.0], prob=0.5'
        """
        return f"snr_db=[{self.min_snr_db}, {self.max_snr_db}], prob={self.prob}"


def coloured_noise(batch, samples, exponents, device=None, dtype=torch.float32):
    """Gaussian noise with a ``1 / f ** exponent`` power spectrum.

    White noise is shaped in the frequency domain: its rFFT is multiplied by
    ``f ** (-exponent / 2)`` and the DC bin is removed. Exponent 0 is white,
    1 pink and 2 brown (red) noise.

    Arguments
    ---------
    batch : int
        Number of noise signals.
    samples : int
        Length of each.
    exponents : torch.Tensor or float
        Spectral exponent per signal ``(batch,)``, or one for all.
    device : torch.device, optional
        Device of the output.
    dtype : torch.dtype
        Floating dtype of the output.

    Returns
    -------
    torch.Tensor
        Noise ``(batch, samples)`` (not normalised).

    Example
    -------
    >>> noise = coloured_noise(1, 4096, 2.0)
    >>> power = torch.fft.rfft(noise[0]).abs().pow(2)
    >>> bool(power[1:50].mean() > 100 * power[1000:1050].mean())
    True
    """
    white = torch.randn(batch, samples, device=device, dtype=dtype)
    exponents = torch.as_tensor(exponents, device=device, dtype=dtype)
    exponents = exponents.expand(batch) if exponents.dim() == 0 else exponents
    spectrum = torch.fft.rfft(white, dim=-1)
    freqs = torch.arange(spectrum.shape[-1], device=device, dtype=dtype)
    gain = freqs.clamp(min=1.0)[None, :] ** (-exponents[:, None] / 2)
    gain[:, 0] = 0.0
    return torch.fft.irfft(spectrum * gain, n=samples, dim=-1)


class ColouredNoise(_ItemwiseAugmentation):
    """Pink or brown noise at a random SNR (CLAR's mixed noise, ``mx``).

    Each selected item gets noise of a colour drawn uniformly from
    ``colours`` (generated by :func:`coloured_noise`) at an SNR drawn
    uniformly in ``[min_snr_db, max_snr_db]`` relative to the clip's mean
    power. The official code mixes in recorded brown, pink and fan noise
    files, or white noise; here the coloured noises are synthesised, so no
    file is needed.

    Arguments
    ---------
    min_snr_db : float
        Lowest SNR in dB.
    max_snr_db : float
        Highest SNR in dB.
    colours : sequence of str
        Colours to draw from: ``pink`` (1/f), ``brown`` (1/f^2), ``white``.
    prob : float
        Probability that an item gets noise.

    Example
    -------
    >>> noise = ColouredNoise(5, 5, colours=("brown",), prob=1.0)
    >>> wavs = torch.randn(2, 8000)
    >>> noise(wavs, torch.ones(2)).shape
    torch.Size([2, 8000])
    """

    def __init__(
        self, min_snr_db=0.0, max_snr_db=20.0, colours=("pink", "brown"), prob=0.5
    ):
        super().__init__(prob)
        self.min_snr_db, self.max_snr_db = _check_range(
            min_snr_db, max_snr_db, "min_snr_db", "max_snr_db"
        )
        if isinstance(colours, str):
            colours = (colours,)
        colours = tuple(colours)
        unknown = [c for c in colours if c not in NOISE_EXPONENTS]
        if not colours or unknown:
            raise ValueError(
                f"colours must be a non-empty subset of {tuple(NOISE_EXPONENTS)}, "
                f"got {colours}"
            )
        self.colours = colours
        self.register_buffer(
            "_exponents",
            torch.tensor([NOISE_EXPONENTS[c] for c in colours]),
            persistent=False,
        )

    def _augment(self, wavs):
        batch, samples = wavs.shape
        pick = torch.randint(0, len(self.colours), (batch,), device=wavs.device)
        exponents = self._exponents.to(wavs.device, wavs.dtype)[pick]
        noise = coloured_noise(batch, samples, exponents, wavs.device, wavs.dtype)
        snr = _uniform(self.min_snr_db, self.max_snr_db, batch, wavs.device)
        return _scale_to_snr(wavs, noise, snr.to(wavs.dtype))

    def extra_repr(self):
        """Summarises the settings for ``repr``.

        Returns
        -------
        str
            The constructor arguments.

        Example
        -------
        >>> ColouredNoise().extra_repr()
        "snr_db=[0.0, 20.0], colours=('pink', 'brown'), prob=0.5"
        """
        return (
            f"snr_db=[{self.min_snr_db}, {self.max_snr_db}], "
            f"colours={self.colours}, prob={self.prob}"
        )


class TimeMask(_ItemwiseAugmentation):
    """Zeroes one random contiguous segment of each selected item (CLAR's ``tm``).

    The segment has exactly ``round(fraction * samples)`` samples (1/8 of the
    clip, as in the official code) and a uniform start. The official code
    fills it with N(0, 0.01) noise; ``noise_std`` does that, 0 (the default)
    writes zeros.

    Arguments
    ---------
    fraction : float
        Length of the segment as a fraction of the clip.
    prob : float
        Probability that an item is masked.
    noise_std : float
        Standard deviation of the Gaussian noise written into the segment;
        0 writes zeros.

    Example
    -------
    >>> mask = TimeMask(fraction=0.25, prob=1.0)
    >>> out = mask(torch.ones(3, 400), torch.ones(3))
    >>> (out == 0).sum(dim=1)
    tensor([100, 100, 100])
    """

    def __init__(self, fraction=1 / 8, prob=0.5, noise_std=0.0):
        super().__init__(prob)
        self.fraction = check_unit_interval(fraction, "fraction")
        if not float(noise_std) >= 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        self.noise_std = float(noise_std)

    def _augment(self, wavs):
        batch, samples = wavs.shape
        width = int(round(self.fraction * samples))
        if width == 0:
            return wavs
        start = torch.randint(0, samples - width + 1, (batch, 1), device=wavs.device)
        positions = torch.arange(samples, device=wavs.device)[None, :]
        inside = (positions >= start) & (positions < start + width)
        fill = torch.zeros_like(wavs)
        if self.noise_std > 0:
            fill = torch.randn_like(wavs) * self.noise_std
        return torch.where(inside, fill, wavs)

    def extra_repr(self):
        """Summarises the settings for ``repr``.

        Returns
        -------
        str
            The constructor arguments.

        Example
        -------
        >>> TimeMask().extra_repr()
        'fraction=0.125, prob=0.5, noise_std=0.0'
        """
        return f"fraction={self.fraction}, prob={self.prob}, noise_std={self.noise_std}"


class TimeShift(_ItemwiseAugmentation):
    """Random circular shift of each selected item (CLAR's ``ts``).

    The shift is drawn uniformly among the integers in
    ``[-max_shift_s * sample_rate, max_shift_s * sample_rate]`` and applied as
    ``torch.roll`` (``out[t] = in[(t - shift) mod samples]``), so samples
    pushed off one end come back at the other, as ``np.roll`` in the official
    code.

    Arguments
    ---------
    sample_rate : int
        Sample rate of the clips.
    max_shift_s : float
        Largest shift in seconds (0.5 s in CLAR).
    prob : float
        Probability that an item is shifted.

    Example
    -------
    >>> shift = TimeShift(sample_rate=10, max_shift_s=0.3, prob=1.0)
    >>> out = shift(torch.arange(10.0)[None], torch.ones(1))
    >>> any(torch.equal(out[0], torch.arange(10.0).roll(s)) for s in range(-3, 4))
    True
    """

    def __init__(self, sample_rate=16000, max_shift_s=0.5, prob=0.5):
        super().__init__(prob)
        if not float(max_shift_s) >= 0:
            raise ValueError(f"max_shift_s must be >= 0, got {max_shift_s}")
        self.sample_rate = int(sample_rate)
        self.max_shift_s = float(max_shift_s)
        self.max_shift = int(round(self.max_shift_s * self.sample_rate))

    def _augment(self, wavs):
        batch, samples = wavs.shape
        shifts = torch.randint(
            -self.max_shift, self.max_shift + 1, (batch, 1), device=wavs.device
        )
        source = torch.arange(samples, device=wavs.device)[None, :] - shifts
        return wavs.gather(1, source.remainder(samples))

    def extra_repr(self):
        """Summarises the settings for ``repr``.

        Returns
        -------
        str
            The constructor arguments.

        Example
        -------
        >>> TimeShift().extra_repr()
        'sample_rate=16000, max_shift_s=0.5, prob=0.5'
        """
        return (
            f"sample_rate={self.sample_rate}, max_shift_s={self.max_shift_s}, "
            f"prob={self.prob}"
        )


class TimeStretch(_ItemwiseAugmentation):
    """Random phase-vocoder time stretch, same length (CLAR's ``tts``).

    The rate of each selected item is drawn uniformly in
    ``[min_rate, max_rate]`` (> 1 speeds up and shortens, < 1 slows down),
    the item is stretched by :func:`time_stretch` with its own rate (the whole
    batch in one STFT), which keeps the pitch, and the result is cropped or
    zero-padded on the right to the original length. (The official code also
    resamples the stretched clip back to the original length, which undoes
    the stretch and changes the pitch instead; the crop-or-pad reading of the
    paper is implemented here.)

    Arguments
    ---------
    min_rate : float
        Lowest rate (0.5 in CLAR).
    max_rate : float
        Highest rate (1.5 in CLAR).
    prob : float
        Probability that an item is stretched.
    n_fft : int
        STFT size of the phase vocoder (hop ``n_fft // 4``); clips must have
        at least that many samples.

    Example
    -------
    >>> stretch = TimeStretch(min_rate=2.0, max_rate=2.0, prob=1.0)
    >>> out = stretch(torch.randn(2, 4000), torch.ones(2))
    >>> out.shape, bool((out[:, 2000:] == 0).all())
    (torch.Size([2, 4000]), True)
    """

    def __init__(self, min_rate=0.5, max_rate=1.5, prob=0.5, n_fft=512):
        super().__init__(prob)
        self.min_rate, self.max_rate = _check_range(
            min_rate, max_rate, "min_rate", "max_rate"
        )
        if not self.min_rate > 0:
            raise ValueError(f"min_rate must be > 0, got {min_rate}")
        self.n_fft = int(n_fft)

    def _augment(self, wavs):
        batch, samples = wavs.shape
        rates = _uniform(self.min_rate, self.max_rate, batch, wavs.device)
        return time_stretch(wavs, rates.to(wavs.dtype), samples, self.n_fft)

    def extra_repr(self):
        """Summarises the settings for ``repr``.

        Returns
        -------
        str
            The constructor arguments.

        Example
        -------
        >>> TimeStretch().extra_repr()
        'rate=[0.5, 1.5], prob=0.5, n_fft=512'
        """
        return f"rate=[{self.min_rate}, {self.max_rate}], prob={self.prob}, n_fft={self.n_fft}"


# Options of :class:`speechbrain.augment.augmenter.Augmenter` that make it
# return more (or fewer) clips than it is given, with the values that do not.
BATCH_KEEPING_AUGMENTER_OPTIONS = {
    "concat_original": False,
    "repeat_augment": 1,
    "parallel_augment": False,
    "augment_start_index": 0,
    "augment_end_index": None,
}


def _batch_changing_options(augmentation, batch):
    """The options of an ``Augmenter`` that change the size of a ``batch``."""
    changing = {}
    for name, keeps in BATCH_KEEPING_AUGMENTER_OPTIONS.items():
        value = getattr(augmentation, name, keeps)
        if name == "augment_start_index":
            # An Augmenter starting past the batch returns it unchanged.
            changes = 0 < value < batch
        elif name == "augment_end_index":
            changes = value is not None and value < batch
        elif name == "parallel_augment":
            # With parallel_augment_fixed_bs, the parallel outputs share the batch.
            changes = bool(value) and not getattr(
                augmentation, "parallel_augment_fixed_bs", False
            )
        else:
            changes = value != keeps
        if changes:
            changing[name] = value
    return changing


def augment_waveforms(augmentation, wavs, lengths=None):
    """Calls a waveform augmentation the way SpeechBrain's ``Augmenter`` does.

    ``lengths`` is passed when the augmentation's ``forward`` takes a
    ``lengths`` (or ``wav_lens``) argument, as
    :class:`speechbrain.augment.augmenter.Augmenter` and
    :class:`speechbrain.nnet.containers.LengthsCapableSequential` decide it
    (:func:`speechbrain.utils.callchains.lengths_arg_name`); None becomes
    full lengths for those. The output may be the waveforms or a
    ``(wavs, lengths)`` pair (what an ``Augmenter`` returns). Either way it
    must hold one clip per input clip: an ``Augmenter`` with an option that
    adds or drops clips (``concat_original=True``, ``repeat_augment != 1``,
    ``parallel_augment=True`` without ``parallel_augment_fixed_bs``, augment
    start or end indices inside the batch) is refused
    before it runs, naming the option, and any other change of the batch size
    is an error after it.

    Arguments
    ---------
    augmentation : callable
        A module (or function) taking ``wavs`` and possibly ``lengths``.
    wavs : torch.Tensor
        Padded waveforms ``(batch, samples)``.
    lengths : torch.Tensor, optional
        Relative lengths ``(batch,)``.

    Returns
    -------
    wavs : torch.Tensor
        The augmented waveforms, one per input clip.
    lengths : torch.Tensor or None
        The relative lengths the augmentation returned, else the given ones.

    Example
    -------
    >>> from speechbrain.augment.time_domain import DropChunk
    >>> drop = DropChunk(
    ...     drop_length_low=100, drop_length_high=100, drop_count_low=1, drop_count_high=1
    ... )
    >>> out, lengths = augment_waveforms(drop, torch.ones(2, 1000))
    >>> out.shape, int((out == 0).sum())
    (torch.Size([2, 1000]), 200)
    >>> from speechbrain.augment.augmenter import Augmenter
    >>> augment_waveforms(Augmenter(concat_original=True, augmentations=[drop]), out)
    Traceback (most recent call last):
        ...
    ValueError: Augmenter returns a different number of clips than it is given (concat_original=True); a waveform augmentation must return one clip per input clip: set concat_original=False
    """
    name = type(augmentation).__name__
    changing = _batch_changing_options(augmentation, wavs.shape[0])
    if changing:
        given = ", ".join(f"{k}={v!r}" for k, v in changing.items())
        keep = ", ".join(
            f"{k}={BATCH_KEEPING_AUGMENTER_OPTIONS[k]!r}" for k in changing
        )
        raise ValueError(
            f"{name} returns a different number of clips than it is given "
            f"({given}); a waveform augmentation must return one clip per "
            f"input clip: set {keep}"
        )
    lengths_name = lengths_arg_name(getattr(augmentation, "forward", augmentation))
    if lengths_name is None:
        out = augmentation(wavs)
    else:
        if lengths is None:
            lengths = torch.ones(wavs.shape[0], device=wavs.device)
        out = augmentation(wavs, **{lengths_name: lengths})
    if isinstance(out, (tuple, list)):
        if len(out) != 2:
            raise ValueError(
                f"{name} returned {len(out)} values; a waveform augmentation "
                "returns wavs or (wavs, lengths)"
            )
        out, lengths = out
    if out.shape[0] != wavs.shape[0]:
        raise ValueError(
            f"{name} returned {out.shape[0]} clips for a batch of {wavs.shape[0]}; "
            "a waveform augmentation must return one clip per input clip"
        )
    return out, lengths


class AugmentationChain(torch.nn.Sequential):
    """Applies waveform augmentations one after the other, passing ``lengths`` on.

    A :class:`torch.nn.Sequential` whose forward has SpeechBrain's signature
    ``(wavs, lengths) -> wavs``: each member is called through
    :func:`augment_waveforms`, so CLAR's augmentations of this module and
    SpeechBrain's (:class:`speechbrain.augment.time_domain.DropChunk`,
    ``DropFreq``, ``AddNoise``, an
    :class:`~speechbrain.augment.augmenter.Augmenter`...) mix in one chain,
    and the lengths an ``Augmenter`` returns go to the next member. Each of
    CLAR's augmentations draws its own items with its own ``prob``, as
    ``RandomApply`` around each transform of the official CLAR code. The
    paper's best pair is fade in/out followed by time masking. In YAML::

        augmentation: !new:craft_modules.augment.waveform.AugmentationChain
            augmentations:
                - !new:craft_modules.augment.waveform.Fade
                - !new:craft_modules.augment.waveform.TimeMask
                - !new:speechbrain.augment.time_domain.DropFreq

    Arguments
    ---------
    augmentations : list of callable
        Modules mapping ``(batch, samples)`` waveforms (and possibly
        ``lengths``) to waveforms, or to ``(wavs, lengths)``, of the same
        batch size; an empty list is the identity.

    Example
    -------
    >>> from speechbrain.augment.time_domain import DropChunk
    >>> chain = AugmentationChain([Fade(prob=1.0), TimeMask(prob=1.0), DropChunk()])
    >>> chain(torch.randn(2, 8000), torch.ones(2)).shape
    torch.Size([2, 8000])
    >>> len(chain)
    3
    """

    def __init__(self, augmentations=()):
        super().__init__(*augmentations)

    def forward(self, wavs, lengths=None):
        """Applies every augmentation in order.

        Arguments
        ---------
        wavs : torch.Tensor
            Padded waveforms ``(batch, samples)``.
        lengths : torch.Tensor, optional
            Relative lengths ``(batch,)``; None means full lengths.

        Returns
        -------
        torch.Tensor
            The augmented waveforms, one per input clip.

        Example
        -------
        >>> wavs = torch.randn(2, 100)
        >>> torch.equal(AugmentationChain([])(wavs, torch.ones(2)), wavs)
        True
        """
        for augmentation in self:
            wavs, lengths = augment_waveforms(augmentation, wavs, lengths)
        return wavs
