"""CLAR: contrastive and supervised learning of auditory representations.

CLAR (Al-Tahan & Mohsenzadeh, "CLAR: Contrastive Learning of Auditory
Representations", AISTATS 2021) trains an encoder on two augmented views of
each clip with SimCLR's NT-Xent loss, jointly with cross-entropy on the part of
the batch that is labelled. This module holds the model; its
front end is :class:`craft_modules.features.clar_frontend.ClarFrontEnd`, its
encoders :mod:`craft_modules.nn.resnet`, its losses
:func:`craft_modules.losses.nt_xent_loss` and
:func:`craft_modules.losses.labelled_cross_entropy`:

* :class:`ClarModel`: front end + encoder + projection head + classifier:
  ``forward_features`` gives the embedding, ``forward_head`` the logits and
  ``model(wavs, lens, output=...)`` the training views of
  :func:`clar_losses`.
* :func:`clar_losses`, which computes the losses of the three training modes
  of the paper (supervised, self-supervised, CLAR).

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import torch
from torch import nn
from torch.nn import functional as F

from craft_modules.augment.waveform import augment_waveforms
from craft_modules.features.clar_frontend import ClarFrontEnd
from craft_modules.losses import labelled_cross_entropy, nt_xent_loss
from craft_modules.models.inputs import check_waveform_batch
from craft_modules.nn.resnet import ResNet18_1D, ResNet18_2D

ENCODERS = ("spectrogram", "raw")
#: What :meth:`ClarModel.forward` returns for :func:`clar_losses`' views.
TRAINING_OUTPUTS = ("logits", "projection", "both", "probe")
CLAR_MODES = ("supervised", "selfsupervised", "clar")


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
    >>> embedding = model.forward_features(wavs)
    >>> embedding.shape, model.forward_head(embedding).shape
    (torch.Size([2, 512]), torch.Size([2, 10]))
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
        """Classifies a batch, or returns the views CLAR's training needs.

        ``model(wavs, lens)`` is ``forward_head(forward_features(wavs, lens))``;
        ``output`` selects the other outputs :func:`clar_losses` trains on
        (through ``forward``, so that DDP sees every training call).

        Arguments
        ---------
        wavs : torch.Tensor
            Padded waveforms ``(batch, samples)``.
        lens : torch.Tensor, optional
            Relative lengths ``(batch,)`` (validated only).
        output : str
            ``logits`` ``(batch, n_classes)``; ``projection``, the
            L2-normalised ``(batch, proj_dim)``; ``both``, the tuple
            ``(logits, projection)`` for CLAR training; ``probe``, the same
            with the logits computed on the detached embedding (the
            classifier learns, the encoder gets no gradient from it: linear
            evaluation of self-supervised features).

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
        if output not in TRAINING_OUTPUTS:
            hint = ""
            if output == "embedding":
                hint = " (the embedding is forward_features(wavs, lens))"
            raise ValueError(
                f"output must be one of {TRAINING_OUTPUTS}, got {output!r}{hint}"
            )
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
        embedding = self.forward_features(wavs, lens)
        if output == "logits":
            return self.forward_head(embedding)
        projection = F.normalize(self.projection(embedding), dim=-1)
        if output == "projection":
            return projection
        if output == "probe":  # a linear classifier on frozen (detached) features
            return self.forward_head(embedding.detach()), projection
        return self.forward_head(embedding), projection

    def forward_features(self, wavs, lens=None):
        """The encoder's pooled embedding ``h`` of a batch.

        Arguments
        ---------
        wavs : torch.Tensor
            Padded waveforms ``(batch, samples)``.
        lens : torch.Tensor, optional
            Relative lengths ``(batch,)`` (validated only).

        Returns
        -------
        torch.Tensor
            ``(batch, embed_dim)`` (512 for ResNet18).

        Example
        -------
        >>> ClarModel("spectrogram", n_classes=2).forward_features(torch.zeros(2, 200))
        Traceback (most recent call last):
            ...
        ValueError: clips of 200 samples are shorter than the STFT window of 256 samples (16.0 ms at 16000 Hz)
        """
        check_waveform_batch(wavs, lens)
        if self.front_end is None:
            return self.encoder(wavs)
        front_end = self.front_end
        if wavs.shape[-1] < front_end.win_length:
            raise ValueError(
                f"clips of {wavs.shape[-1]} samples are shorter than the STFT "
                f"window of {front_end.win_length} samples "
                f"({1000 * front_end.win_length / front_end.sample_rate} ms at "
                f"{front_end.sample_rate} Hz)"
            )
        return self.encoder(front_end(wavs))

    def forward_head(self, features, pre_logits=False):
        """The classifier on :meth:`forward_features`' embedding.

        Arguments
        ---------
        features : torch.Tensor
            Embeddings ``(batch, embed_dim)``.
        pre_logits : bool
            Returns the embedding itself (the classifier's input).

        Returns
        -------
        torch.Tensor
            ``(batch, n_classes)`` logits, or ``features`` with ``pre_logits``.
        """
        if pre_logits:
            return features
        if self.classifier is None:
            raise ValueError(
                "the logits need the classifier, but the model was built with "
                "n_classes=None"
            )
        return self.classifier(features)


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
        Called as ``model(wavs, lens, output=...)`` (see
        :meth:`ClarModel.forward`); needs the classifier for
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
        Waveform augmentation with SpeechBrain's signature
        ``(wavs, lengths) -> wavs`` (or ``(wavs, lengths)``, as an
        ``Augmenter``), keeping the batch's shape, e.g. an
        :class:`~craft_modules.augment.waveform.AugmentationChain` or
        :class:`speechbrain.augment.time_domain.DropChunk`; called through
        :func:`~craft_modules.augment.waveform.augment_waveforms`. None uses
        the clips as they are.
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
            views, _ = augment_waveforms(augment, wavs, lens)
        if views.shape != wavs.shape:  # both views go through one forward
            raise ValueError(
                f"the augmentation turned {tuple(wavs.shape)} waveforms into "
                f"{tuple(views.shape)}; CLAR's views must keep the batch's shape"
            )
        return views

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
