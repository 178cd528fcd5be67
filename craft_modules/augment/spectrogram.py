"""SSAST's training augmentations, batched on the model's device.

The official SSAST data loader augments one clip at a time
(``src/dataloader.py`` of YuanGongND/ssast: mixup, SpecAugment masking, noise). The same random draws are made
here per clip, but for a whole padded batch in a few tensor operations:

* :func:`mixup` / :class:`MixUp`: waveform-level mixup with a partner drawn
  uniformly from the batch, ``lambda ~ Beta(alpha, alpha)``, additive labels.
  It acts on waveforms and targets together:
  ``(wavs, lens, targets) -> (wavs, lens, targets)``.
* :class:`SpecAugment`: one frequency and one time mask per clip, drawn by
  :func:`torchaudio.functional.mask_along_axis_iid`.
* :class:`NoiseAugment`: SSAST's ``noise=True``: scaled uniform noise on the
  normalised features and a circular time shift of up to 10 frames.

SpecAugment and NoiseAugment act on the normalised fbank features inside the
model (``feats -> feats``, ``(B, T, F)``; a :class:`torch.nn.Sequential`
chains them). The modules only act in training mode and are the identity in
evaluation.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import torch
from speechbrain.utils.logger import get_logger
from torchaudio.functional import mask_along_axis_iid

logger = get_logger(__name__)


def check_unit_interval(value, name):
    """Returns ``value`` as a float; ValueError naming ``name`` unless in [0, 1].

    Example
    -------
    >>> check_unit_interval(0.25, "prob")
    0.25
    >>> check_unit_interval(1.5, "prob")
    Traceback (most recent call last):
        ...
    ValueError: prob must be in [0, 1], got 1.5
    """
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def draw_item_mask(batch, prob, device=None):
    """Draws which items of a batch an augmentation transforms.

    Arguments
    ---------
    batch : int
        Number of items.
    prob : float
        Probability that an item is selected, in [0, 1]; 0 selects none and
        1 selects all.
    device : torch.device, optional
        Device of the mask (its random draw uses that device's generator).

    Returns
    -------
    torch.Tensor
        Boolean mask ``(batch,)``, True for the items to transform.

    Example
    -------
    >>> draw_item_mask(4, 1.0)
    tensor([True, True, True, True])
    >>> draw_item_mask(3, 0.0)
    tensor([False, False, False])
    """
    prob = check_unit_interval(prob, "prob")
    return torch.rand(batch, device=device) < prob


def _check_width(value, name):
    """Raises ValueError unless ``value`` is a non-negative integer."""
    if int(value) != value or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value}")
    return int(value)


def _check_alpha(value):
    """Raises ValueError unless ``value > 0``."""
    if not float(value) > 0.0:
        raise ValueError(f"alpha must be > 0, got {value}")
    return float(value)


def _check_features(feats):
    """Checks that ``feats`` is a ``(B, T, F)`` tensor."""
    if not isinstance(feats, torch.Tensor) or feats.dim() != 3:
        shape = tuple(feats.shape) if isinstance(feats, torch.Tensor) else None
        raise ValueError(f"features must be a (B, T, F) tensor, got {shape}")


#: SSAST's time-mask parameter as a share of the input frames: 192 / 1024
#: (AudioSet, 10 s) = 96 / 512 (ESC-50, 5 s) = 0.1875.
SSAST_TIMEM_RATIO = 0.1875


def resolve_timem(timem, timem_ratio, target_frames):
    """The time-mask parameter in frames: ``timem`` if given, else its share of the frames.

    Arguments
    ---------
    timem : int, optional
        An absolute width in frames (wins when not None).
    timem_ratio : float, optional
        The width as a share of ``target_frames``, in [0, 1].
    target_frames : int, optional
        Frames of the model's input.

    Returns
    -------
    int
        ``timem``, or ``round(timem_ratio * target_frames)``; 0 when both are None.

    Example
    -------
    >>> resolve_timem(None, 0.1875, 512), resolve_timem(40, 0.1875, 512)
    (96, 40)
    >>> resolve_timem(None, 0.1875, None)
    Traceback (most recent call last):
        ...
    ValueError: timem is null and timem_ratio=0.1875 needs target_frames
    """
    if timem is not None:
        return timem
    if timem_ratio is None:
        return 0  # no time masks
    ratio = check_unit_interval(timem_ratio, "timem_ratio")
    if target_frames is None:
        raise ValueError(
            f"timem is null and timem_ratio={timem_ratio} needs target_frames"
        )
    return int(round(ratio * int(target_frames)))


class SpecAugment(torch.nn.Module):
    """One frequency mask and one time mask per clip, as in SSAST's loader.

    SSAST's ``src/dataloader.py`` (YuanGongND/ssast) applies
    ``torchaudio.transforms.FrequencyMasking(freqm)`` and then
    ``TimeMasking(timem)`` to each clip's ``(1, F, T)`` fbank. Here the same
    masks are drawn for a whole batch with
    :func:`torchaudio.functional.mask_along_axis_iid` (one independent mask
    per clip, the ``iid_masks=True`` mode of those transforms): a mask is
    ``floor(U * param)`` bins (frames) wide, 0 to ``param - 1``, and starts at
    ``floor(U' * (size - U * param))``, the draws of
    :func:`torchaudio.functional.mask_along_axis` for one clip. All the
    frequency draws of the batch come first, then the time draws, in the
    dtype of the features (float32 for :class:`KaldiFbank`'s; float16 and
    bfloat16 features are masked in float32, where every frame index is
    exact).

    The time-mask width follows the clip: with ``timem`` None it is
    ``round(timem_ratio * target_frames)``. :data:`SSAST_TIMEM_RATIO`
    (0.1875) gives SSAST's widths exactly at SSAST's clip lengths: 192 of
    1024 frames at AudioSet's 10 s (``src/finetune/audioset/run_as.sh``),
    96 of 512 at ESC-50's 5 s (``src/finetune/esc50/run_esc_patch.sh``),
    and 24 of a 1 s clip's 128 frames, where the absolute 96 would hide up
    to three quarters of it. ``freqm`` stays absolute: it counts mel bins
    (SSAST: 48 and 24 of 128), whatever the clip length.

    Arguments
    ---------
    freqm : int
        Largest frequency mask parameter (``freqm`` of SSAST); 0 disables the
        frequency masks.
    timem : int, optional
        The same for time masks, in frames; None: ``timem_ratio`` of
        ``target_frames`` (no time masks when that is None too). An integer
        overrides the ratio.
    timem_ratio : float, optional
        Time-mask parameter as a share of the input frames, in [0, 1].
    target_frames : int, optional
        Frames of the model's input (needed with ``timem_ratio``).
    fill_value : float, optional
        Value written into the masks. SSAST masks with 0 in the log-mel domain
        before normalising, so a model normalising afterwards should set this
        to the normalised value of 0 (:attr:`KaldiFbank.pad_value`). None
        means 0.0.

    Example
    -------
    >>> augment = SpecAugment(freqm=8, timem=20, fill_value=0.5)
    >>> feats = torch.randn(4, 100, 32)
    >>> augment(feats).shape
    torch.Size([4, 100, 32])
    >>> _ = augment.eval()
    >>> torch.equal(augment(feats), feats)
    True
    >>> [SpecAugment(timem_ratio=SSAST_TIMEM_RATIO, target_frames=f).timem for f in (1024, 512, 128)]
    [192, 96, 24]
    """

    def __init__(
        self, freqm=0, timem=None, fill_value=None, timem_ratio=None, target_frames=None
    ):
        super().__init__()
        self.freqm = _check_width(freqm, "freqm")
        self.timem = _check_width(
            resolve_timem(timem, timem_ratio, target_frames), "timem"
        )
        self.fill_value = fill_value

    def forward(self, feats):
        """Masks a batch of features in training mode.

        Arguments
        ---------
        feats : torch.Tensor
            Normalised features ``(B, T, F)``.

        Returns
        -------
        torch.Tensor
            The masked features (a new tensor), or ``feats`` itself in
            evaluation mode or when both widths are 0.

        Example
        -------
        >>> feats = torch.zeros(2, 10, 6)
        >>> out = SpecAugment(freqm=6, timem=10, fill_value=1.0)(feats)
        >>> bool(((out == 0) | (out == 1)).all())
        True
        """
        _check_features(feats)
        if not self.training or (self.freqm == 0 and self.timem == 0):
            return feats
        fill = 0.0 if self.fill_value is None else float(self.fill_value)
        exact = feats.dtype in (torch.float32, torch.float64)
        masked = feats if exact else feats.float()
        # (B, T, F): axis 2 holds the frequency bins, axis 1 the frames.
        if self.freqm > 0:
            masked = mask_along_axis_iid(masked, self.freqm, fill, axis=2)
        if self.timem > 0:
            masked = mask_along_axis_iid(masked, self.timem, fill, axis=1)
        return masked if exact else masked.to(feats.dtype)

    def extra_repr(self):
        """Summarises the settings for ``repr``.

        Returns
        -------
        str
            The constructor arguments.

        Example
        -------
        >>> SpecAugment(freqm=4).extra_repr()
        'freqm=4, timem=0, fill_value=None'
        """
        return f"freqm={self.freqm}, timem={self.timem}, fill_value={self.fill_value}"


class NoiseAugment(torch.nn.Module):
    """SSAST's ``noise=True``: uniform noise and a random circular time shift.

    Per clip: ``feats + U[0, 1)^(T x F) * r / 10`` with ``r ~ U[0, 1)``, then
    a circular roll along time by an integer drawn from
    ``[-max_shift, max_shift)`` (-10 to 9 frames by default).

    Arguments
    ---------
    max_shift : int
        Bound of the time shift in frames; 0 disables the shift.
    p : float
        Probability that a clip is augmented: 1 is SSAST's ``noise=True``
        (every clip, the random draws exactly as before), 0 turns the module
        off (e.g. ``--noise_prob=0`` from scratch on small data, where it
        delays learning).

    Example
    -------
    >>> NoiseAugment(p=0.0)(torch.ones(1, 4, 3)).equal(torch.ones(1, 4, 3))
    True
    >>> noise = NoiseAugment()
    >>> feats = torch.zeros(2, 50, 16)
    >>> out = noise(feats)
    >>> bool((out >= 0).all() and (out < 0.1).all())
    True
    >>> _ = noise.eval()
    >>> torch.equal(noise(feats), feats)
    True
    """

    def __init__(self, max_shift=10, p=1.0):
        super().__init__()
        self.max_shift = _check_width(max_shift, "max_shift")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"NoiseAugment p must be in [0, 1], got {p}")
        self.p = float(p)

    def forward(self, feats):
        """Adds noise and shifts a batch of features in training mode.

        Arguments
        ---------
        feats : torch.Tensor
            Normalised features ``(B, T, F)``.

        Returns
        -------
        torch.Tensor
            The augmented features, or ``feats`` itself in evaluation mode.

        Example
        -------
        >>> out = NoiseAugment(max_shift=0)(torch.ones(1, 4, 3))
        >>> bool(((out >= 1) & (out < 1.1)).all())
        True
        """
        _check_features(feats)
        if not self.training or self.p == 0.0:
            return feats
        batch, frames, _ = feats.shape
        scale = torch.rand(batch, 1, 1, device=feats.device, dtype=feats.dtype) / 10
        noisy = feats + torch.rand_like(feats) * scale
        if self.max_shift != 0:
            shifts = torch.randint(
                -self.max_shift, self.max_shift, (batch,), device=feats.device
            )
            # torch.roll semantics: out[t] = in[(t - shift) mod T].
            source = torch.arange(frames, device=feats.device)[None, :]
            source = (source - shifts[:, None]).remainder(frames)
            noisy = noisy.gather(1, source[:, :, None].expand_as(noisy))
        if self.p < 1.0:  # drawn last: p=1 keeps SSAST's random stream
            keep = torch.rand(batch, 1, 1, device=feats.device) >= self.p
            noisy = torch.where(keep, feats, noisy)
        return noisy

    def extra_repr(self):
        """Summarises the settings for ``repr``.

        Returns
        -------
        str
            The constructor arguments.

        Example
        -------
        >>> NoiseAugment().extra_repr()
        'max_shift=10, p=1.0'
        """
        return f"max_shift={self.max_shift}, p={self.p}"


def batch_derangement(batch, device=None):
    """A random mixup partner for every clip of a batch, never the clip itself.

    A shuffled batch rolled by a random non-zero offset: with ``perm`` a
    uniform random permutation and ``k`` uniform in ``[1, batch - 1]``, clip
    ``perm[i]`` is paired with ``perm[(i + k) % batch]``. No clip is its own
    partner, and by symmetry each clip's partner is uniform over the other
    ``batch - 1`` clips. Everything stays on ``device`` (no host read, so no
    GPU synchronisation).

    Arguments
    ---------
    batch : int
        Batch size, at least 2.
    device : torch.device, optional
        Where the indices are made.

    Returns
    -------
    torch.Tensor
        Long tensor ``(batch,)``: ``partner[i]`` is clip ``i``'s partner.

    Example
    -------
    >>> partner = batch_derangement(5)
    >>> sorted(partner.tolist())  # a permutation...
    [0, 1, 2, 3, 4]
    >>> bool((partner != torch.arange(5)).all())  # ...without a fixed point
    True
    """
    if batch < 2:
        raise ValueError(f"a derangement needs at least 2 clips, got {batch}")
    perm = torch.randperm(batch, device=device)
    offset = torch.randint(1, batch, (1,), device=device)
    shifted = (torch.arange(batch, device=device) + offset) % batch
    return torch.empty_like(perm).scatter_(0, perm, perm[shifted])


def mixup(wavs, lens, targets, alpha=10.0, prob=0.5):
    """Waveform-level mixup with partners drawn from the batch (SSAST style).

    Each clip is mixed with probability ``prob``, with a partner drawn from
    the batch by :func:`batch_derangement` (uniformly among the *other*
    clips: SSAST's ``dataloader.py`` draws the partner uniformly from the
    whole dataset, where drawing the clip itself is negligible; within a
    batch it would be a ``1 / B`` chance of an unmixed clip), and
    ``lam ~ Beta(alpha, alpha)``. A batch of one clip is returned unmixed.
    The
    partner is cut, or zero-padded, to the first clip's true length, then
    ``mixed = lam * w1 + (1 - lam) * w2`` and
    ``mixed_targets = lam * t1 + (1 - lam) * t2``; unmixed clips have
    ``lam = 1``. SSAST removes each waveform's mean before and after mixing;
    the final removal is left to the feature extractor
    (:class:`craft_modules.features.fbank.KaldiFbank` removes each clip's mean).

    Arguments
    ---------
    wavs : torch.Tensor
        Padded waveforms ``(B, L)``.
    lens : torch.Tensor, optional
        Relative lengths ``(B,)`` in ``(0, 1]`` (SpeechBrain convention);
        None means every clip fills the batch.
    targets : torch.Tensor
        Multi-hot or one-hot targets ``(B, C)``.
    alpha : float
        Beta distribution parameter (10 in SSAST).
    prob : float
        Probability that a clip is mixed.

    Returns
    -------
    mixed_wavs : torch.Tensor
        ``(B, L)``.
    lens : torch.Tensor
        The relative lengths, unchanged.
    mixed_targets : torch.Tensor
        Float targets ``(B, C)``.

    Example
    -------
    >>> wavs = torch.randn(4, 800)
    >>> targets = torch.eye(4)
    >>> out, lens, mixed = mixup(wavs, torch.ones(4), targets, prob=1.0)
    >>> out.shape, mixed.shape
    (torch.Size([4, 800]), torch.Size([4, 4]))
    >>> torch.allclose(mixed.sum(dim=1), torch.ones(4))
    True
    """
    alpha = _check_alpha(alpha)
    prob = check_unit_interval(prob, "prob")
    if not isinstance(wavs, torch.Tensor) or wavs.dim() != 2:
        raise ValueError("wavs must be a (B, L) tensor")
    if not isinstance(targets, torch.Tensor) or targets.dim() != 2:
        raise ValueError("targets must be a (B, C) tensor of multi-hot targets")
    if targets.shape[0] != wavs.shape[0]:
        raise ValueError(
            f"{targets.shape[0]} targets for a batch of {wavs.shape[0]} waveforms"
        )
    dtype = wavs.dtype if wavs.is_floating_point() else torch.float32
    targets = targets.to(dtype)
    if prob == 0.0:
        return wavs, lens, targets
    batch, length = wavs.shape
    device = wavs.device

    if lens is None:
        samples = torch.full((batch,), length, device=device, dtype=torch.long)
    else:
        samples = torch.round(lens.to(device).float() * length).long()
        samples = samples.clamp(0, length)

    if batch < 2:  # no other clip to mix with
        return wavs, lens, targets
    mixed = draw_item_mask(batch, prob, device)
    partner = batch_derangement(batch, device)
    # Parameters filled on the device (torch.tensor(alpha, device=...) would be
    # a blocking host-to-device copy); unvalidated: validation reads on the host.
    concentration = torch.full((), float(alpha), device=device)
    beta = torch.distributions.Beta(concentration, concentration, validate_args=False)
    lam = torch.where(
        mixed, beta.sample((batch,)), torch.ones(batch, device=device)
    ).to(dtype)

    # The partner keeps its own samples up to the first clip's true length.
    keep = torch.minimum(samples, samples[partner])
    positions = torch.arange(length, device=device)
    partner_wavs = wavs[partner] * (positions[None, :] < keep[:, None])
    mixed_wavs = lam[:, None] * wavs + (1.0 - lam[:, None]) * partner_wavs
    mixed_targets = lam[:, None] * targets + (1.0 - lam[:, None]) * targets[partner]
    return mixed_wavs, lens, mixed_targets


class MixUp(torch.nn.Module):
    """A module applying :func:`mixup` in training mode, for recipe YAML files.

    Arguments
    ---------
    alpha : float
        Beta distribution parameter (10 in SSAST).
    prob : float
        Probability that a clip is mixed (0.5 for AudioSet, 0.6 for Speech
        Commands, 0 for ESC-50 in SSAST).

    Example
    -------
    >>> mix = MixUp(prob=1.0)
    >>> wavs, lens, targets = mix(torch.randn(2, 100), torch.ones(2), torch.eye(2))
    >>> targets.shape
    torch.Size([2, 2])
    """

    def __init__(self, alpha=10.0, prob=0.5):
        super().__init__()
        self.alpha = _check_alpha(alpha)
        self.prob = check_unit_interval(prob, "prob")

    def forward(self, wavs, lens, targets):
        """Mixes a batch in training mode; the identity otherwise.

        Arguments
        ---------
        wavs : torch.Tensor
            Padded waveforms ``(B, L)``.
        lens : torch.Tensor, optional
            Relative lengths ``(B,)``.
        targets : torch.Tensor
            Multi-hot or one-hot targets ``(B, C)``.

        Returns
        -------
        tuple
            ``(wavs, lens, targets)``, mixed in training mode.

        Example
        -------
        >>> mix = MixUp(prob=1.0).eval()
        >>> wavs = torch.randn(2, 100)
        >>> torch.equal(mix(wavs, None, torch.eye(2))[0], wavs)
        True
        """
        if not self.training or self.prob == 0.0:
            return wavs, lens, targets
        return mixup(wavs, lens, targets, alpha=self.alpha, prob=self.prob)

    def extra_repr(self):
        """Summarises the settings for ``repr``.

        Returns
        -------
        str
            The constructor arguments.

        Example
        -------
        >>> MixUp().extra_repr()
        'alpha=10.0, prob=0.5'
        """
        return f"alpha={self.alpha}, prob={self.prob}"
