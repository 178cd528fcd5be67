"""The CRAFT models a recipe YAML instantiates: one pretrainer and one classifier.

Both take a padded batch of 16 kHz waveforms and relative lengths,
``forward(wavs, lens)``, and compute their own features on the device:

* :class:`CraftPretrainer` returns a dict of named losses. Its ``method``
  selects any pretraining method of Table 2 of the CRAFT paper: ``ssast``
  (masked spectrogram patch modelling), ``swapt`` (the same on spectrogram and
  MSAE waveform tokens, Eq. 3), ``wapt`` (waveform tokens only, Appendix A.3),
  ``swacl`` (the spectrogram-waveform contrastive loss alone) and ``pswacl``
  (MSPM + ``r_cl`` x SWaCL, Eq. 4b; CRAFT's pretraining).
* :class:`CraftClassifier` returns logits. Its ``fusion`` selects a fine-tuning
  method of Table 2: ``ast`` (spectrogram stream only), ``swast`` (both streams
  through the shared encoder, pooled outputs concatenated) and ``swab``
  (bottleneck fusion, Eq. 5; CRAFT's fine-tuning); ``wav`` (MSAE waveform
  tokens only) is the AST fine-tuning of WaPT-AST (the CRAFT paper,
  Appendix A.3 and Table 8).

Both also split their inference path as timm's models do:
``forward_features(wavs, lens)`` gives the encoder's output tokens of each
stream and ``forward_head(features, pre_logits=True)`` their pooled embedding
(``pre_logits=False``: the classifier's logits). Each public entry point
checks its waveform batch once, with
:func:`craft_modules.models.inputs.check_waveform_batch`; the submodules
(fbank, MSAE, patch embeddings) trust it.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import torch
from torch import nn

from craft_modules.features.fbank import KaldiFbank
from craft_modules.losses import masked_patch_infonce, masked_patch_mse, swacl_loss
from craft_modules.models.inputs import check_waveform_batch
from craft_modules.nn.embedding import MSAE, PatchEmbedding, spectrogram_image
from craft_modules.nn.masking import mask_ids
from craft_modules.nn.transformer import ViTEncoder, encode_two_streams

PRETRAINING_METHODS = ("ssast", "swapt", "wapt", "swacl", "pswacl")
FUSION_METHODS = ("ast", "swast", "swab", "wav")

#: SSAST's masking, 400 of the 512 patches of a 10 s clip, which the CRAFT paper
#: adopts (Section 4.2: "the training methodology outlined in SSAST").
SSAST_MASK_RATIO = 400 / 512


class CraftBackbone(nn.Module):
    """Feature extraction, token embeddings of both streams and the shared encoder.

    Arguments
    ---------
    use_spec : bool
        Builds the spectrogram stream (kaldi fbank + patch embedding).
    use_wav : bool
        Builds the waveform stream (MSAE + its patch embedding).
    model_size : str
        Encoder preset: ``tiny``, ``small`` or ``base``.
    embed_dim : int, optional
        Overrides the preset's token dimension.
    depth : int, optional
        Overrides the preset's number of blocks.
    num_heads : int, optional
        Overrides the preset's number of heads.
    target_frames : int
        Frames of the padded/cut input (1024 for 10 s, 512 for 5 s).
    n_mels : int
        Mel bins; also the MSAE's channels per scale.
    norm_stats : str, optional
        Named normalisation statistics (``audioset``, ``esc50`` ...).
    mean : float
        Feature mean, when ``norm_stats`` is not given.
    std : float
        Feature standard deviation, when ``norm_stats`` is not given.
    fshape : int
        Patch height.
    tshape : int
        Patch width.
    fstride : int
        Patch stride along frequency.
    tstride : int
        Patch stride along time.
    msae_kernels : list of int
        MSAE kernel sizes.
    msae_activation : str
        MSAE nonlinearity (see :class:`craft_modules.nn.embedding.MSAE`).
    msae_stride : int
        MSAE convolution stride (1: dense; see :class:`craft_modules.nn.embedding.MSAE`).
    """

    def __init__(
        self,
        use_spec=True,
        use_wav=True,
        model_size="base",
        embed_dim=None,
        depth=None,
        num_heads=None,
        target_frames=1024,
        n_mels=128,
        norm_stats=None,
        mean=-4.2677393,
        std=4.5689974,
        fshape=16,
        tshape=16,
        fstride=16,
        tstride=16,
        msae_kernels=(11, 51, 101),
        msae_activation="relu",
        msae_stride=5,
    ):
        super().__init__()
        self.encoder = ViTEncoder(model_size, embed_dim, depth, num_heads)
        dim = self.encoder.embed_dim
        self.target_frames = int(target_frames)
        grid = dict(
            input_fdim=n_mels,
            input_tdim=target_frames,
            fshape=fshape,
            tshape=tshape,
            fstride=fstride,
            tstride=tstride,
        )
        self.fbank = self.spec_embed = self.msae = self.wav_embed = None
        if use_spec:
            self.fbank = KaldiFbank(
                target_frames,
                mean=mean,
                std=std,
                stats=norm_stats or None,
                n_mels=n_mels,
            )
            self.spec_embed = PatchEmbedding(dim, in_channels=1, **grid)
        if use_wav:
            self.msae = MSAE(
                msae_kernels,
                n_mels,
                target_frames,
                activation=msae_activation,
                conv_stride=msae_stride,
            )
            self.wav_embed = PatchEmbedding(dim, in_channels=self.msae.n_scales, **grid)
        self.cluster = int(fshape) != int(n_mels)

    @property
    def embed_dim(self):
        """Token dimension of the encoder."""
        return self.encoder.embed_dim

    def compile_targets(self):
        """The modules ``compile: True`` compiles: each block of the shared encoder.

        Blocks rather than the whole encoder, because SWaB's fusion calls the
        blocks one by one (:func:`craft_modules.nn.transformer.encode_two_streams`).
        """
        return list(self.encoder.blocks)

    def spec_image(self, wavs, lens):
        """Normalised spectrogram image ``(B, 1, n_mels, target_frames)``."""
        return spectrogram_image(self.fbank(wavs, lens))

    def wav_image(self, wavs, lens):
        """MSAE waveform image ``(B, n_scales, n_mels, target_frames)``."""
        return self.msae(wavs, lens)

    def pool(self, streams, pooling="mean"):
        """Pools each stream's tokens and concatenates the streams (spectrogram first).

        Arguments
        ---------
        streams : tuple of torch.Tensor
            Encoder outputs ``(B, n_class_tokens + n_patches, D)`` per stream,
            as :meth:`forward_features` returns them.
        pooling : str
            ``mean``: the mean of the patch tokens (SSAST's ``ft_avgtok``);
            ``cls``: the mean of the cls and dist tokens.

        Returns
        -------
        torch.Tensor
            ``(B, len(streams) * D)``.
        """
        n_cls = PatchEmbedding.n_class_tokens
        if pooling == "mean":
            pooled = [s[:, n_cls:].mean(dim=1) for s in streams]
        else:
            pooled = [s[:, :n_cls].mean(dim=1) for s in streams]
        return torch.cat(pooled, dim=-1)


class CraftPretrainer(CraftBackbone):
    """Self-supervised pretraining of CRAFT and its ablations (Table 2, pretraining rows).

    Losses, following the official SSAST code for masked patch modelling
    (see :mod:`craft_modules.losses`):

    * ``ssast``:  ``nce_spec + r_g * mse_spec``
    * ``swapt``:  ``(nce_spec + r_g * mse_spec) + r_w * (nce_wav + r_g * mse_wav)``
    * ``wapt``:   ``nce_wav + r_g * mse_wav``
    * ``swacl``:  ``swacl``
    * ``pswacl``: ``nce_spec + r_g * mse_spec + r_cl * swacl``

    As in the official code, the discriminative and generative objectives of
    a stream each get their own masked pass with independent masks (masked
    patch embeddings replaced by a learnable mask embedding before the
    positional embedding; all tokens go through the encoder).
    ``single_pass=True`` computes both heads from one masked pass instead, a
    compute-saving switch that is off by default. The waveform stream's
    targets are its own MSAE patches (detached), predicted by heads of that
    size. For SWaCL, patch tokens are mean-pooled and projected by a per-stream
    head (Linear, ReLU, Linear). Eq. 4a of the CRAFT paper (Section 3.3)
    contrasts ``O_spec = Encoder(p_spec)`` and ``O_wav = Encoder(p_wav)``, the
    encoder outputs of the unmasked tokens of both streams (Eq. 6b, Eq. 1c):
    by default (``swacl_spec="clean"``) the spectrogram side is an unmasked
    pass of its own, as is the waveform side. ``swacl_spec="masked"`` takes the
    spectrogram side from the discriminative masked pass of MSPM instead (400
    of 512 patches are mask tokens): a compute-saving switch, not the paper's
    method, off by default (see ``benchmarks/bench_core.py`` for its step-time
    ratio). All passes have the same number of tokens and run through the
    encoder as one batch (``batched=True``).

    Arguments
    ---------
    method : str
        ``ssast``, ``swapt``, ``wapt``, ``swacl`` or ``pswacl``.
    mask_patch : int, optional
        Masked patches per clip (400 of 512 in SSAST); takes precedence over
        ``mask_ratio`` when set.
    mask_ratio : float
        Share of the patch grid masked when ``mask_patch`` is None, rounded to
        the nearest patch; the default 400/512 gives SSAST's 400 patches at
        10 s and scales with shorter clips (100 of 128 at 2 s).
    cluster_factor : int
        Smallest cluster side of cluster masking.
    r_g : float
        Weight of the generative loss (10 in SSAST).
    r_w : float
        Weight of the waveform MSPM loss in SWaPT (Eq. 3).
    r_cl : float
        Weight of SWaCL in PSWaCL (Eq. 4b; 0.01 in the paper).
    proj_dim : int
        Output size of the SWaCL projection heads.
    swacl_temperature : float
        SWaCL temperature (1.0 reproduces Eq. 4a's raw dot products).
    swacl_cosine : bool
        Cosine similarity instead of dot products in SWaCL.
    swacl_symmetric : bool
        Adds the spectrogram-anchored direction to SWaCL.
    swacl_spec : str
        ``clean`` (Eq. 4a: an unmasked spectrogram pass) or ``masked`` (the
        discriminative masked pass, a compute saving): the spectrogram side
        of SWaCL.
    single_pass : bool
        One masked pass for both MSPM heads.
    batched : bool
        Runs all passes as one encoder batch.
    **backbone : dict
        Arguments of :class:`CraftBackbone` (size, frames, patches, MSAE...).

    Example
    -------
    >>> model = CraftPretrainer(
    ...     method="pswacl", model_size="tiny", depth=1, target_frames=64, mask_patch=20
    ... )
    >>> losses = model(torch.randn(2, 8000), torch.tensor([1.0, 0.8]))
    >>> sorted(losses)
    ['acc_spec', 'loss', 'mse_spec', 'nce_spec', 'swacl', 'swacl_acc']
    >>> spec, wav = model.forward_features(torch.randn(2, 8000))
    >>> spec.shape, model.forward_head((spec, wav), pre_logits=True).shape
    (torch.Size([2, 34, 192]), torch.Size([2, 384]))
    """

    def __init__(
        self,
        method="pswacl",
        mask_patch=None,
        mask_ratio=SSAST_MASK_RATIO,
        cluster_factor=3,
        r_g=10.0,
        r_w=1.0,
        r_cl=0.01,
        proj_dim=256,
        swacl_temperature=1.0,
        swacl_cosine=False,
        swacl_symmetric=False,
        swacl_spec="clean",
        single_pass=False,
        batched=True,
        **backbone,
    ):
        method = str(method).lower()
        if method not in PRETRAINING_METHODS:
            raise ValueError(
                f"method must be one of {PRETRAINING_METHODS}, got {method!r}"
            )
        if swacl_spec not in ("masked", "clean"):
            raise ValueError(
                f"swacl_spec must be 'masked' or 'clean', got {swacl_spec!r}"
            )
        self.method = method
        self.spec_mspm = method in ("ssast", "swapt", "pswacl")
        self.wav_mspm = method in ("swapt", "wapt")
        self.contrastive = method in ("swacl", "pswacl")
        super().__init__(
            use_spec=self.spec_mspm or self.contrastive,
            use_wav=self.wav_mspm or self.contrastive,
            **backbone,
        )
        if backbone.get("fstride", 16) != backbone.get("fshape", 16) or backbone.get(
            "tstride", 16
        ) != backbone.get("tshape", 16):
            raise ValueError(
                "pretraining needs non-overlapping patches (stride == patch shape)"
            )
        self.cluster_factor = int(cluster_factor)
        self.r_g, self.r_w, self.r_cl = float(r_g), float(r_w), float(r_cl)
        self.swacl_options = dict(
            temperature=float(swacl_temperature),
            cosine=bool(swacl_cosine),
            symmetric=bool(swacl_symmetric),
        )
        self.swacl_spec = swacl_spec if self.spec_mspm else "clean"
        self.single_pass = bool(single_pass)
        self.batched = bool(batched)
        dim = self.embed_dim
        if self.spec_mspm:
            patch_dim = self.spec_embed.fshape * self.spec_embed.tshape
            self.mask_embed = nn.Parameter(torch.zeros(1, 1, dim))
            nn.init.xavier_normal_(self.mask_embed)
            self.cpredlayer = _prediction_head(dim, patch_dim)
            self.gpredlayer = _prediction_head(dim, patch_dim)
        if self.wav_mspm:
            patch_dim = (
                self.msae.n_scales * self.wav_embed.fshape * self.wav_embed.tshape
            )
            self.wav_mask_embed = nn.Parameter(torch.zeros(1, 1, dim))
            nn.init.xavier_normal_(self.wav_mask_embed)
            self.wav_cpredlayer = _prediction_head(dim, patch_dim)
            self.wav_gpredlayer = _prediction_head(dim, patch_dim)
        if self.contrastive:
            self.spec_proj = _prediction_head(dim, int(proj_dim))
            self.wav_proj = _prediction_head(dim, int(proj_dim))
        grid = (self.spec_embed or self.wav_embed).num_patches
        self.mask_patch = _masked_patches(mask_patch, mask_ratio, grid)
        limit = grid - 2 if self.cluster else grid
        if (self.spec_mspm or self.wav_mspm) and not 0 < self.mask_patch <= limit:
            asked = (
                f"mask_patch={mask_patch}"
                if mask_patch is not None
                else f"mask_ratio={mask_ratio} ({self.mask_patch} patches)"
            )
            raise ValueError(
                f"{asked} does not fit the {grid}-patch grid of "
                f"target_frames={self.target_frames} (at most {limit})"
            )

    def forward(self, wavs, lens=None):
        """Computes the pretraining losses of a batch.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``(batch, samples)``.
        lens : torch.Tensor, optional
            Relative lengths ``(batch,)``.

        Returns
        -------
        dict
            ``loss`` (the total to minimise) and its named parts: ``nce_*``,
            ``mse_*``, ``acc_*`` (discriminative accuracy) per masked stream,
            ``swacl`` and ``swacl_acc`` when contrastive.
        """
        lens = check_waveform_batch(wavs, lens)
        passes = []  # (name, tokens, masked ids or None)
        targets = {}
        if self.spec_mspm or self.contrastive:
            spec_image = self.spec_image(wavs, lens)
        if self.wav_mspm or self.contrastive:
            wav_image = self.wav_image(wavs, lens)
        if self.spec_mspm:
            targets["spec"] = self.spec_embed.unfold(spec_image).detach()
            passes += self._masked_passes(
                "spec", self.spec_embed, spec_image, self.mask_embed
            )
        if self.wav_mspm:
            targets["wav"] = self.wav_embed.unfold(wav_image).detach()
            passes += self._masked_passes(
                "wav", self.wav_embed, wav_image, self.wav_mask_embed
            )
        if self.contrastive:
            passes.append(("wav_clean", self.wav_embed(wav_image), None))
            if self.swacl_spec == "clean":
                passes.append(("spec_clean", self.spec_embed(spec_image), None))
        outputs = self._encode([tokens for _, tokens, _ in passes])
        results = {name: (out, ids) for (name, _, ids), out in zip(passes, outputs)}
        return self._losses(results, targets)

    def forward_features(self, wavs, lens=None):
        """The unmasked encoder outputs of each stream: the embeddings inference uses.

        Each stream the method built (spectrogram, waveform) goes through the
        shared encoder on its own, unmasked; these are the tokens of
        ``CraftClassifier(fusion="swast")`` (``ast`` without a waveform
        stream) carrying this backbone, as
        :func:`craft_modules.inference.tagger.embedding_model_from_pretrainer`
        builds it.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``(batch, samples)``.
        lens : torch.Tensor, optional
            Relative lengths ``(batch,)``.

        Returns
        -------
        tuple of torch.Tensor
            The normalised tokens of each stream, spectrogram first,
            ``(batch, n_class_tokens + n_patches, embed_dim)`` each (the two
            class tokens first).
        """
        lens = check_waveform_batch(wavs, lens)
        tokens = []
        if self.spec_embed is not None:
            tokens.append(self.spec_embed(self.spec_image(wavs, lens)))
        if self.wav_embed is not None:
            tokens.append(self.wav_embed(self.wav_image(wavs, lens)))
        if len(tokens) == 1:
            return (self.encoder(tokens[0]),)
        return encode_two_streams(
            self.encoder, *tokens, None, self.encoder.depth, self.batched
        )

    def forward_head(self, features, pre_logits=True):
        """The pooled embedding of :meth:`forward_features`' tokens.

        A pretrainer has no classifier: only ``pre_logits=True`` is defined.

        Arguments
        ---------
        features : tuple of torch.Tensor
            The output of :meth:`forward_features`.
        pre_logits : bool
            Must be True.

        Returns
        -------
        torch.Tensor
            ``(batch, n_streams * embed_dim)``: each stream's patch tokens
            averaged, concatenated (spectrogram first).
        """
        if not pre_logits:
            raise ValueError(
                "a pretraining model has no classification head (pre_logits=False): "
                "fine-tune it first"
            )
        return self.pool(features, "mean")

    def _masked_passes(self, stream, embed, image, mask_embed):
        """Builds the masked token sequences of one stream (one or two passes)."""
        patches = embed.patchify(image)
        kinds = ["both"] if self.single_pass else ["disc", "gen"]
        passes = []
        for kind in kinds:
            ids = mask_ids(
                patches.shape[0],
                embed.f_dim,
                embed.t_dim,
                self.mask_patch,
                self.cluster,
                self.cluster_factor,
                patches.device,
            )
            mask = torch.zeros(
                patches.shape[:2], device=patches.device, dtype=patches.dtype
            )
            mask.scatter_(1, ids, 1.0)
            mask = mask.unsqueeze(-1)
            masked = patches * (1 - mask) + mask_embed.to(patches.dtype) * mask
            passes.append((f"{stream}_{kind}", embed.add_tokens(masked), ids))
        return passes

    def _encode(self, token_list):
        """Runs every pass through the encoder, as one batch when allowed."""
        if self.batched and len({t.shape[1] for t in token_list}) == 1:
            out = self.encoder(torch.cat(token_list, dim=0))
            return out.split([t.shape[0] for t in token_list], dim=0)
        return [self.encoder(t) for t in token_list]

    def _losses(self, results, targets):
        losses = {}
        total = 0.0
        heads = {}
        if self.spec_mspm:
            heads["spec"] = (self.cpredlayer, self.gpredlayer, 1.0)
        if self.wav_mspm:
            heads["wav"] = (
                self.wav_cpredlayer,
                self.wav_gpredlayer,
                self.r_w if self.spec_mspm else 1.0,
            )
        for stream, (disc_head, gen_head, weight) in heads.items():
            disc = results[f"{stream}_both" if self.single_pass else f"{stream}_disc"]
            gen = results[f"{stream}_both" if self.single_pass else f"{stream}_gen"]
            nce, acc = masked_patch_infonce(
                disc_head(_masked_outputs(*disc)), _gather_ids(targets[stream], disc[1])
            )
            mse = masked_patch_mse(
                gen_head(_masked_outputs(*gen)), _gather_ids(targets[stream], gen[1])
            )
            (
                losses[f"nce_{stream}"],
                losses[f"mse_{stream}"],
                losses[f"acc_{stream}"],
            ) = nce, mse, acc
            total = total + weight * (nce + self.r_g * mse)
        if self.contrastive:
            spec_out = results[
                "spec_clean"
                if self.swacl_spec == "clean"
                else ("spec_both" if self.single_pass else "spec_disc")
            ][0]
            wav_out = results["wav_clean"][0]
            n_cls = PatchEmbedding.n_class_tokens
            wav_z = self.wav_proj(wav_out[:, n_cls:].mean(dim=1))
            spec_z = self.spec_proj(spec_out[:, n_cls:].mean(dim=1))
            # Global negatives in training; evaluation shards differ in size per rank.
            swacl, swacl_acc = swacl_loss(
                wav_z, spec_z, global_negatives=self.training, **self.swacl_options
            )
            losses["swacl"], losses["swacl_acc"] = swacl, swacl_acc
            total = total + (self.r_cl if self.spec_mspm else 1.0) * swacl
        losses["loss"] = total
        return losses


def _masked_patches(mask_patch, mask_ratio, n_patches):
    """Masked patches per clip: ``mask_patch`` if set, else ``mask_ratio`` of the grid.

    Example
    -------
    >>> _masked_patches(None, SSAST_MASK_RATIO, 512), _masked_patches(None, SSAST_MASK_RATIO, 96)
    (400, 75)
    >>> _masked_patches(20, SSAST_MASK_RATIO, 512)
    20
    """
    if mask_patch is not None:
        return int(mask_patch)
    if mask_ratio is None or not 0.0 < float(mask_ratio) < 1.0:
        raise ValueError(
            f"mask_ratio must be in (0, 1) when mask_patch is null, got {mask_ratio!r}"
        )
    return int(round(float(mask_ratio) * n_patches))


def _prediction_head(dim, out_dim):
    """SSAST's prediction head: Linear(D, D), ReLU, Linear(D, out_dim), PyTorch default init."""
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out_dim))


def _gather_ids(values, ids):
    """Selects rows ``ids`` ``(B, M)`` of ``values`` ``(B, N, P)``."""
    return torch.gather(values, 1, ids.unsqueeze(-1).expand(-1, -1, values.shape[-1]))


def _masked_outputs(outputs, ids):
    """Encoder outputs of the masked patches (skipping the two class tokens)."""
    return _gather_ids(outputs, ids + PatchEmbedding.n_class_tokens)


class CraftClassifier(CraftBackbone):
    """Fine-tuning model: AST, SWAST or SWaB (Table 2, fine-tuning rows) with a linear head.

    The pooled representation of a stream is the mean of its patch tokens after
    the encoder's final norm, excluding both class tokens (SSAST's
    ``ft_avgtok``), or the mean of the cls and dist outputs (``pooling="cls"``).
    AST classifies the spectrogram's; SWAST and SWaB classify the
    concatenation of both streams' (``2 * embed_dim``). ``fusion="wav"`` is
    the AST fine-tuning of WaPT-AST (the CRAFT paper, Appendix A.3, Eq. 9 and
    Table 8): the spectrogram embedding is replaced by the MSAE one, so the
    model builds no spectrogram stream (no fbank, no ``spec_embed``; a
    ``spec_augment`` is then ignored) and classifies the waveform tokens'
    pooled output (``embed_dim``). It fine-tunes from any pretraining run
    with a waveform embedding (WaPT, SWaPT, SWaCL, PSWaCL). The head is
    ``mlp_head = Sequential(LayerNorm, Linear)`` as in SSAST.

    Arguments
    ---------
    n_classes : int
        Number of output classes.
    fusion : str
        ``ast``, ``swast``, ``swab`` or ``wav`` (waveform tokens only).
    n_bottlenecks : int
        Bottleneck tokens of SWaB (64 in the paper, Table 5c).
    fusion_layer : int
        First block with bottleneck fusion (4 in the paper, Table 5d); the
        encoder's depth means no fused block, i.e. SWAST (Table 5d's last
        row), and then no bottleneck parameter is created.
    pooling : str
        ``mean`` (patch tokens) or ``cls`` (cls and dist tokens).
    batched : bool
        Runs the two streams as one batched pass.
    spec_augment : torch.nn.Module, optional
        Applied to the normalised spectrogram ``(B, T, F)`` in training mode only
        (e.g. SpecAugment masking, noise); a submodule whose ``fill_value`` is
        None gets the normalised value of log-mel 0, SSAST's mask value.
    **backbone : dict
        Arguments of :class:`CraftBackbone`; strides default to 10 (SSAST
        fine-tuning).

    Example
    -------
    >>> model = CraftClassifier(
    ...     n_classes=5, fusion="swab", model_size="tiny", depth=2, target_frames=64,
    ...     n_bottlenecks=4, fusion_layer=1,
    ... )
    >>> wavs, lens = torch.randn(3, 8000), torch.tensor([1.0, 0.7, 0.5])
    >>> model(wavs, lens).shape
    torch.Size([3, 5])
    >>> spec, wav = model.forward_features(wavs, lens)
    >>> spec.shape, model.forward_head((spec, wav), pre_logits=True).shape
    (torch.Size([3, 62, 192]), torch.Size([3, 384]))
    >>> wapt_ast = CraftClassifier(5, fusion="wav", model_size="tiny", depth=1, target_frames=64)
    >>> wapt_ast.spec_embed is None, wapt_ast(wavs, lens).shape
    (True, torch.Size([3, 5]))
    """

    def __init__(
        self,
        n_classes,
        fusion="swab",
        n_bottlenecks=64,
        fusion_layer=4,
        pooling="mean",
        batched=True,
        spec_augment=None,
        **backbone,
    ):
        fusion = str(fusion).lower()
        if fusion not in FUSION_METHODS:
            raise ValueError(f"fusion must be one of {FUSION_METHODS}, got {fusion!r}")
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        backbone.setdefault("fstride", 10)
        backbone.setdefault("tstride", 10)
        super().__init__(use_spec=fusion != "wav", use_wav=fusion != "ast", **backbone)
        self.fusion = fusion
        self.pooling = pooling
        self.batched = bool(batched)
        if fusion == "wav":
            spec_augment = None  # there is no spectrogram to augment
        self.spec_augment = spec_augment
        if spec_augment is not None:
            # SSAST masks with log-mel 0 before normalising: the normalised pad value.
            for module in spec_augment.modules():
                if getattr(module, "fill_value", 0.0) is None:
                    module.fill_value = self.fbank.pad_value
        dim = self.embed_dim
        self.fusion_layer = int(fusion_layer)
        if fusion == "swab" and not 0 <= self.fusion_layer <= self.encoder.depth:
            raise ValueError(
                f"fusion_layer must be in [0, {self.encoder.depth}], got {fusion_layer}"
            )
        self.n_bottlenecks = int(n_bottlenecks) if fusion == "swab" else 0
        if self.n_bottlenecks < 0:
            raise ValueError(f"n_bottlenecks must be >= 0, got {n_bottlenecks}")
        if self.fusion_layer == self.encoder.depth:
            # No fused block: SWAST exactly, without an unused parameter (DDP).
            self.n_bottlenecks = 0
        if self.n_bottlenecks:
            self.bottlenecks = nn.Parameter(torch.zeros(1, self.n_bottlenecks, dim))
            nn.init.trunc_normal_(self.bottlenecks, std=0.02)
        else:
            self.bottlenecks = None
        head_dim = dim if fusion in ("ast", "wav") else 2 * dim
        self.mlp_head = nn.Sequential(
            nn.LayerNorm(head_dim), nn.Linear(head_dim, int(n_classes))
        )
        self.n_classes = int(n_classes)

    def forward(self, wavs, lens=None):
        """Classifies a batch: ``forward_head(forward_features(wavs, lens))``.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``(batch, samples)``.
        lens : torch.Tensor, optional
            Relative lengths ``(batch,)``.

        Returns
        -------
        torch.Tensor
            ``(batch, n_classes)`` logits.
        """
        return self.forward_head(self.forward_features(wavs, lens))

    def forward_features(self, wavs, lens=None):
        """The encoder's output tokens of each stream.

        In training mode the spectrogram goes through ``spec_augment`` first;
        SWaB's streams exchange information through the bottlenecks.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``(batch, samples)``.
        lens : torch.Tensor, optional
            Relative lengths ``(batch,)``.

        Returns
        -------
        tuple of torch.Tensor
            The normalised tokens of each stream (one for AST and ``wav``,
            spectrogram then waveform for SWAST and SWaB), each ``(batch,
            n_class_tokens + n_patches, embed_dim)`` with the cls and dist
            tokens first.
        """
        lens = check_waveform_batch(wavs, lens)
        if self.fusion == "wav":
            return (self.encoder(self.wav_embed(self.wav_image(wavs, lens))),)
        feats = self.fbank(wavs, lens)
        if self.training and self.spec_augment is not None:
            feats = self.spec_augment(feats)
        spec = self.spec_embed(spectrogram_image(feats))
        if self.fusion == "ast":
            return (self.encoder(spec),)
        wav = self.wav_embed(self.wav_image(wavs, lens))
        return encode_two_streams(
            self.encoder,
            spec,
            wav,
            self.bottlenecks,
            self.fusion_layer,
            self.batched,
        )

    def forward_head(self, features, pre_logits=False):
        """Pools the streams' tokens and classifies them.

        Arguments
        ---------
        features : tuple of torch.Tensor
            The output of :meth:`forward_features`.
        pre_logits : bool
            Returns the pooled embedding (the head's input) instead of logits.

        Returns
        -------
        torch.Tensor
            ``(batch, n_classes)`` logits, or the pooled embedding
            ``(batch, n_streams * embed_dim)`` (see ``pooling``).
        """
        embedding = self.pool(features, self.pooling)
        if pre_logits:
            return embedding
        return self.mlp_head(embedding)

    def time_embeddings(self, wavs, lens=None):
        """Embeddings along time: each token column averaged over frequency.

        Both streams share the token grid (and the MSAE pools over the fbank's
        frames), so SWAST/SWaB concatenate their columns (``n_streams *
        embed_dim``, the size of the pooled embedding).

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``(batch, samples)``.
        lens : torch.Tensor, optional
            Relative lengths ``(batch,)``.

        Returns
        -------
        torch.Tensor
            ``(batch, t, n_streams * embed_dim)``.
        torch.Tensor
            ``(t,)`` centre of each column in seconds from the clip start
            (the centre of the fbank frames it covers).

        Example
        -------
        >>> model = CraftClassifier(3, fusion="swast", model_size="tiny", depth=1, target_frames=100)
        >>> emb, centres = model.time_embeddings(torch.randn(2, 16000))
        >>> emb.shape, [round(c, 4) for c in centres[:2].tolist()]
        (torch.Size([2, 9, 384]), [0.0875, 0.1875])
        """
        return self.time_embeddings_from_features(self.forward_features(wavs, lens))

    def time_embeddings_from_features(self, features):
        """:meth:`time_embeddings` from the output of :meth:`forward_features`.

        With :meth:`forward_head` on the same features, one forward pass
        gives both the pooled and the time embeddings.

        Arguments
        ---------
        features : tuple of torch.Tensor
            The output of :meth:`forward_features`.

        Returns
        -------
        torch.Tensor
            ``(batch, t, n_streams * embed_dim)``.
        torch.Tensor
            ``(t,)`` column centres in seconds.

        Example
        -------
        >>> model = CraftClassifier(3, fusion="ast", model_size="tiny", depth=1, target_frames=100)
        >>> emb, _ = model.time_embeddings_from_features(model.forward_features(torch.randn(2, 16000)))
        >>> emb.shape
        torch.Size([2, 9, 192])
        """
        n_cls = PatchEmbedding.n_class_tokens
        streams = [s[:, n_cls:] for s in features]
        embed = self.spec_embed if self.spec_embed is not None else self.wav_embed
        frames = self.fbank if self.fbank is not None else self.msae
        f_dim, t_dim = (int(x) for x in embed.grid)
        columns = [s.reshape(s.shape[0], f_dim, t_dim, -1).mean(dim=1) for s in streams]
        hop = frames.hop_length / frames.sample_rate
        window = frames.win_length / frames.sample_rate
        first = torch.arange(t_dim, dtype=torch.float64) * embed.tstride
        centres = (first + (embed.tshape - 1) / 2) * hop + window / 2
        return torch.cat(columns, dim=-1), centres
