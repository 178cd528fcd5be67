"""Diverse audio embeddings (Verma, arXiv 2309.08751): one transformer per feature.

Each feature stream of :mod:`craft_modules.features.diverse_streams` (pitch peaks,
MFCC timbre, waveform patches, neuralogram) gets its own small transformer,
:class:`StreamTransformer`, which maps it to a 64-d embedding. The
:class:`DiverseEmbeddingModel` cuts every clip into 1 s chunks, embeds each
chunk with every stream, concatenates the stream embeddings and classifies
each chunk with one linear layer; a clip's prediction is the mean over its
chunks. The paper trains each stream on its own, then freezes them and
trains the linear head on the concatenation: ``freeze_streams`` here, and
the loading of the stage-1 streams in :mod:`craft_modules.weights.streams`
(the recipes' ``stream_checkpoints``), do that.

Authors
 * CRAFT for SpeechBrain contributors 2026
"""

import math

import torch
from torch import nn

from craft_modules.features.diverse_streams import STREAMS
from craft_modules.models.inputs import check_waveform_batch, valid_samples
from craft_modules.nn.transformer import ViTEncoder


class StreamTransformer(nn.Module):
    """One feature stream: features, linear projection, positions, ViT, mean pool.

    The feature frames ``(batch, frames, feature_dim)`` are normalised with a
    LayerNorm (``feature_norm``; features of very different scales, such as
    binary peak maps, MFCCs and raw samples, then reach the projection on an
    equal footing), projected to ``embed_dim``, given a learned positional
    embedding and encoded by :class:`craft_modules.nn.transformer.ViTEncoder`
    (pre-norm blocks, final LayerNorm). The output is the mean of the encoded
    frames over the clip's valid frames (from ``lens`` and the feature's
    ``num_frames``); attention itself sees all frames, the padding frames
    being the features of zeros (silence).

    The positional embedding has ``max_frames`` rows; a shorter input uses
    the first rows, a longer one a linear interpolation of all rows.

    Arguments
    ---------
    feature : torch.nn.Module
        A feature stream mapping ``(batch, samples)`` to
        ``(batch, frames, feature_dim)``, e.g. from
        :data:`craft_modules.features.diverse_streams.STREAMS`.
    feature_dim : int, optional
        Size of a feature frame; defaults to ``feature.feature_dim``.
    embed_dim : int
        Transformer width and embedding size (64 in the paper).
    depth : int
        Number of transformer blocks (6 in the paper).
    num_heads : int
        Attention heads (must divide ``embed_dim``).
    max_frames : int
        Rows of the learned positional embedding (the frame count of the
        usual input, e.g. of a 1 s chunk).
    mlp_ratio : float
        MLP hidden size relative to ``embed_dim``.
    feature_norm : bool
        Whether to LayerNorm each feature frame before the projection.

    Example
    -------
    >>> from craft_modules.features.diverse_streams import Timbre
    >>> stream = StreamTransformer(Timbre(), embed_dim=16, depth=1, num_heads=2)
    >>> stream(torch.randn(3, 8000), torch.tensor([1.0, 0.5, 0.2])).shape
    torch.Size([3, 16])
    """

    def __init__(
        self,
        feature,
        feature_dim=None,
        embed_dim=64,
        depth=6,
        num_heads=4,
        max_frames=512,
        mlp_ratio=4.0,
        feature_norm=True,
    ):
        super().__init__()
        own_dim = getattr(feature, "feature_dim", None)
        if feature_dim is None:
            if own_dim is None:
                raise ValueError(
                    f"feature_dim is needed: {type(feature).__name__} has no "
                    "feature_dim attribute"
                )
            feature_dim = own_dim
        if own_dim is not None and int(own_dim) != int(feature_dim):
            raise ValueError(
                f"feature_dim={feature_dim} but {type(feature).__name__} gives "
                f"frames of {own_dim}"
            )
        if int(max_frames) < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        self.feature = feature
        self.feature_dim = int(feature_dim)
        self.embed_dim = int(embed_dim)
        self.max_frames = int(max_frames)
        self.norm = nn.LayerNorm(self.feature_dim) if feature_norm else nn.Identity()
        self.proj = nn.Linear(self.feature_dim, self.embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.max_frames, self.embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.encoder = ViTEncoder(
            embed_dim=self.embed_dim,
            depth=int(depth),
            num_heads=int(num_heads),
            mlp_ratio=mlp_ratio,
        )

    def positions(self, frames):
        """Positional embedding for ``frames`` frames, ``(1, frames, embed_dim)``."""
        if frames <= self.max_frames:
            return self.pos_embed[:, :frames]
        resized = nn.functional.interpolate(
            self.pos_embed.transpose(1, 2),
            size=frames,
            mode="linear",
            align_corners=False,
        )
        return resized.transpose(1, 2)

    def valid_frames(self, lens, samples, frames):
        """Number of frames of each clip's true length, in ``[1, frames]``.

        Arguments
        ---------
        lens : torch.Tensor
            Relative lengths ``(batch,)``.
        samples : int
            Padded number of samples.
        frames : int
            Number of feature frames of the padded batch.

        Returns
        -------
        torch.Tensor
            Integer frame counts ``(batch,)``.
        """
        n_samples = valid_samples(lens, samples)
        if hasattr(self.feature, "num_frames"):
            counts = self.feature.num_frames(n_samples)
        else:
            counts = torch.round(lens * frames)
        return counts.long().clamp(1, frames)

    def forward(self, wavs, lens=None):
        """Embeds a batch of waveforms.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``(batch, samples)``.
        lens : torch.Tensor, optional
            Relative lengths ``(batch,)``.

        Returns
        -------
        torch.Tensor
            Embeddings ``(batch, embed_dim)``.
        """
        if lens is None:  # inputs are checked by the model's forward
            lens = torch.ones(wavs.shape[0], device=wavs.device)
        feats = self.feature(wavs)
        frames = feats.shape[1]
        tokens = self.proj(self.norm(feats)) + self.positions(frames)
        tokens = self.encoder(tokens)
        counts = self.valid_frames(lens, wavs.shape[1], frames)
        mask = torch.arange(frames, device=wavs.device)[None] < counts[:, None]
        summed = (tokens * mask.unsqueeze(-1).to(tokens.dtype)).sum(dim=1)
        return summed / counts.unsqueeze(-1).to(tokens.dtype)


def parse_streams(streams):
    """Validates a list of stream names (a comma-separated string is accepted).

    Arguments
    ---------
    streams : list of str or str
        Names from :data:`craft_modules.features.diverse_streams.STREAMS`; a string
        is split on commas (``"pitch,timbre"`` or ``"[pitch, timbre]"``).

    Returns
    -------
    list of str
        The names, in the given order.

    Raises
    ------
    ValueError
        If the list is empty, repeats a name or names an unknown stream.

    Example
    -------
    >>> parse_streams("pitch, timbre")
    ['pitch', 'timbre']
    >>> parse_streams("[waveform]")
    ['waveform']
    >>> parse_streams([])
    Traceback (most recent call last):
        ...
    ValueError: streams is empty: choose at least one of ['neuralogram', 'pitch', 'timbre', 'waveform']
    """
    if isinstance(streams, str):
        streams = streams.strip().strip("[]").replace("'", "").replace('"', "")
        streams = streams.split(",")
    names = [str(name).strip() for name in (streams or []) if str(name).strip()]
    if not names:
        raise ValueError(f"streams is empty: choose at least one of {sorted(STREAMS)}")
    unknown = [name for name in names if name not in STREAMS]
    if unknown:
        raise ValueError(f"unknown stream(s) {unknown}: choose from {sorted(STREAMS)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"stream(s) {repeated} listed more than once")
    return names


class DiverseEmbeddingModel(nn.Module):
    """Per-stream transformers on 1 s chunks, concatenated into a linear head.

    Each clip of the padded batch is cut into non-overlapping chunks of
    ``chunk_seconds``; its true length (from ``lens``) decides how many of
    them hold real audio: ``ceil(valid_samples / chunk_samples)``, at least
    one. Those chunks (a clip shorter than a chunk, and a last partial chunk,
    are zero-padded, never dropped; chunks of pure padding are skipped) go
    through every stream as one batch of ``(n_valid_chunks, chunk_samples)``
    with their own relative lengths, and the stream embeddings are
    concatenated (``head_input_dim = len(streams) * embed_dim``). The linear
    head gives per-chunk logits.

    The clip's logits are the mean of its valid chunks' logits. Since the
    head is linear this equals the head applied to the clip embedding (the
    mean of the chunk embeddings), and it keeps the clip output a logit for
    ``BCEWithLogits``-style losses; the paper's averaging of chunk
    predictions as probabilities can be had from :meth:`chunk_logits`
    (``sigmoid`` then mean over valid chunks).

    ``forward_features`` gives the chunk embeddings, ``forward_head`` their
    clip embedding (``pre_logits=True``) or clip logits, and ``forward`` is
    the two in turn.

    Arguments
    ---------
    n_classes : int
        Number of output classes.
    streams : list of str
        Feature streams, from ``pitch``, ``timbre``, ``waveform``,
        ``neuralogram`` (see :data:`craft_modules.features.diverse_streams.STREAMS`);
        a comma-separated string also works.
    embed_dim : int
        Embedding size of each stream (64 in the paper).
    depth : int
        Transformer blocks per stream.
    num_heads : int
        Attention heads per stream.
    chunk_seconds : float
        Chunk length in seconds.
    sample_rate : int
        Sample rate of the input waveforms.
    freeze_streams : bool
        If True, the stream transformers get no gradient and stay in eval
        mode (only the head trains): the paper's second stage. The model
        reads no file: the stage-1 weights are loaded afterwards by
        :func:`craft_modules.weights.streams.load_stream_checkpoints` (the
        recipes' ``stream_checkpoints``), which keeps the streams frozen.
    stream_options : dict, optional
        ``{stream name: dict of keyword arguments}`` for the feature classes,
        e.g. ``{"pitch": {"top_k": 8}, "neuralogram": {"width": 32}}``.
        Options of streams not in ``streams`` are ignored, so that dropping a
        stream is a one-flag ablation (``--streams=[pitch,timbre]``).
    mlp_ratio : float
        MLP hidden size of the transformer blocks, relative to ``embed_dim``.

    Example
    -------
    >>> model = DiverseEmbeddingModel(
    ...     n_classes=5, streams=["timbre", "waveform"], embed_dim=16, depth=1,
    ...     num_heads=2, chunk_seconds=0.25,
    ... )
    >>> wavs = torch.randn(2, 6000)
    >>> model(wavs, torch.tensor([1.0, 0.3])).shape
    torch.Size([2, 5])
    >>> model.stream_names, model.head_input_dim
    (['timbre', 'waveform'], 32)
    >>> chunk_logits, valid = model.chunk_logits(wavs, torch.tensor([1.0, 0.3]))
    >>> chunk_logits.shape, valid.sum(dim=1).tolist()
    (torch.Size([2, 2, 5]), [2, 1])
    >>> features = model.forward_features(wavs, torch.tensor([1.0, 0.3]))
    >>> model.forward_head(features, pre_logits=True).shape
    torch.Size([2, 32])
    """

    def __init__(
        self,
        n_classes,
        streams=("pitch", "timbre", "waveform", "neuralogram"),
        embed_dim=64,
        depth=6,
        num_heads=4,
        chunk_seconds=1.0,
        sample_rate=16000,
        freeze_streams=False,
        stream_options=None,
        mlp_ratio=4.0,
    ):
        super().__init__()
        self.stream_names = parse_streams(streams)
        self.sample_rate = int(sample_rate)
        self.chunk_seconds = float(chunk_seconds)
        self.chunk_samples = int(round(self.chunk_seconds * self.sample_rate))
        if self.chunk_samples < 1:
            raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")
        stream_options = dict(stream_options or {})
        if "checkpoint_path" in stream_options.get("neuralogram", {}):
            raise ValueError(
                "the neuralogram's checkpoint_path is not a constructor option: "
                "set the recipe's neuralogram_checkpoint (loaded by "
                "craft_modules.weights.streams.load_neuralogram)"
            )
        unknown = sorted(set(stream_options) - set(STREAMS))
        if unknown:  # options of known but unused streams are ignored (ablations)
            raise ValueError(
                f"stream_options names unknown stream(s) {unknown}: choose from "
                f"{sorted(STREAMS)}"
            )
        self.embed_dim = int(embed_dim)
        self.streams = nn.ModuleDict()
        for name in self.stream_names:
            options = {"sample_rate": self.sample_rate, **stream_options.get(name, {})}
            feature = STREAMS[name](**options)
            self.streams[name] = StreamTransformer(
                feature,
                embed_dim=self.embed_dim,
                depth=depth,
                num_heads=num_heads,
                max_frames=int(feature.num_frames(self.chunk_samples)),
                mlp_ratio=mlp_ratio,
            )
        self.head_input_dim = len(self.stream_names) * self.embed_dim
        self.n_classes = int(n_classes)
        self.head = nn.Linear(self.head_input_dim, self.n_classes)
        self.freeze_streams = bool(freeze_streams)
        if self.freeze_streams:
            self.streams.requires_grad_(False)
            self.streams.eval()

    def train(self, mode=True):
        """Sets the training mode; frozen streams stay in eval mode."""
        super().train(mode)
        if getattr(self, "freeze_streams", False):
            self.streams.eval()
        return self

    def chunk(self, wavs, lens, every_chunk=False):
        """Cuts a padded batch into its valid chunks.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``(batch, samples)``.
        lens : torch.Tensor
            Relative lengths ``(batch,)`` (already checked).
        every_chunk : bool
            Returns all ``batch * n_chunks`` chunks, those of pure padding
            included (relative length of one sample), so that no boolean
            selection needs a host sync.

        Returns
        -------
        chunks : torch.Tensor
            The valid chunks ``(n_valid, chunk_samples)``, clip by clip in
            order, samples past a clip's end set to zero.
        chunk_lens : torch.Tensor
            Relative length of each valid chunk ``(n_valid,)``.
        valid : torch.Tensor
            Boolean ``(batch, n_chunks)``: which chunks hold real audio.
        """
        batch, samples = wavs.shape
        size = self.chunk_samples
        n_chunks = math.ceil(samples / size)
        n_valid = valid_samples(lens, samples)
        position = torch.arange(n_chunks * size, device=wavs.device)
        padded = nn.functional.pad(wavs, (0, n_chunks * size - samples))
        padded = padded * (position[None] < n_valid[:, None]).to(wavs.dtype)
        starts = torch.arange(n_chunks, device=wavs.device) * size
        in_chunk = (n_valid[:, None] - starts[None]).clamp(0, size)
        valid = in_chunk > 0
        if every_chunk:
            chunks = padded.reshape(batch * n_chunks, size)
            return chunks, in_chunk.clamp_min(1).flatten().float() / size, valid
        chunks = padded.reshape(batch, n_chunks, size)[valid]
        return chunks, in_chunk[valid].float() / size, valid

    def embed_chunks(self, chunks, chunk_lens):
        """Concatenated stream embeddings of chunks ``(n, head_input_dim)``.

        Arguments
        ---------
        chunks : torch.Tensor
            Chunks ``(n, chunk_samples)``.
        chunk_lens : torch.Tensor
            Their relative lengths ``(n,)``.

        Returns
        -------
        torch.Tensor
            ``(n, len(streams) * embed_dim)``.
        """
        with torch.set_grad_enabled(
            torch.is_grad_enabled() and not self.freeze_streams
        ):
            embeddings = [
                self.streams[name](chunks, chunk_lens) for name in self.stream_names
            ]
        return torch.cat(embeddings, dim=-1)

    def compile_targets(self):
        """The modules ``compile: True`` compiles: each stream's transformer encoder."""
        return [stream.encoder for stream in self.streams.values()]

    def forward(self, wavs, lens=None):
        """Classifies a batch of clips of any length.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``(batch, samples)``.
        lens : torch.Tensor, optional
            Relative lengths ``(batch,)``.

        Returns
        -------
        torch.Tensor
            Clip logits ``(batch, n_classes)``, the mean over the clip's
            valid chunks: ``forward_head(forward_features(wavs, lens))``.
        """
        return self.forward_head(self.forward_features(wavs, lens))

    def forward_features(self, wavs, lens=None):
        """The concatenated stream embeddings of every chunk of a batch.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``(batch, samples)``.
        lens : torch.Tensor, optional
            Relative lengths ``(batch,)``.

        Returns
        -------
        embeddings : torch.Tensor
            ``(batch, n_chunks, head_input_dim)``, zero for chunks of pure
            padding.
        valid : torch.Tensor
            Boolean ``(batch, n_chunks)``: which chunks hold real audio.
        """
        lens = check_waveform_batch(wavs, lens)
        if self.training:
            # Every chunk, padding included (masked below): static shapes, no sync.
            chunks, chunk_lens, valid = self.chunk(wavs, lens, every_chunk=True)
            place = _as_chunk_grid
        else:  # only the chunks holding audio (long clips of varied lengths)
            chunks, chunk_lens, valid = self.chunk(wavs, lens)
            place = _scatter_chunks
        return place(self.embed_chunks(chunks, chunk_lens), valid), valid

    def forward_head(self, features, pre_logits=False):
        """Clip logits (or the clip embedding) from the chunk embeddings.

        Arguments
        ---------
        features : tuple of torch.Tensor
            ``(embeddings, valid)`` from :meth:`forward_features`.
        pre_logits : bool
            Returns the clip embedding ``(batch, head_input_dim)``, the mean
            of the valid chunks' embeddings, instead of the logits.

        Returns
        -------
        torch.Tensor
            Clip logits ``(batch, n_classes)``, the mean of the valid chunks'
            logits, or the clip embedding.
        """
        embeddings, valid = features
        counts = valid.sum(dim=1, keepdim=True).to(embeddings.dtype)
        if pre_logits:
            return embeddings.sum(dim=1) / counts
        return self._chunk_head(embeddings, valid).sum(dim=1) / counts

    def chunk_logits(self, wavs, lens=None):
        """The logits of every chunk of a batch.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``(batch, samples)``.
        lens : torch.Tensor, optional
            Relative lengths ``(batch,)``.

        Returns
        -------
        logits : torch.Tensor
            ``(batch, n_chunks, n_classes)``, zero for chunks of pure padding.
        valid : torch.Tensor
            Boolean ``(batch, n_chunks)``: which chunks hold real audio.
        """
        embeddings, valid = self.forward_features(wavs, lens)
        return self._chunk_head(embeddings, valid), valid

    def _chunk_head(self, embeddings, valid):
        """The head on each valid chunk of ``(batch, n_chunks, D)``, zero elsewhere."""
        if self.training:  # every chunk (no boolean selection: no host sync)
            return _as_chunk_grid(self.head(embeddings), valid)
        return _scatter_chunks(self.head(embeddings[valid]), valid)

    def time_embeddings(self, wavs, lens=None):
        """Embeddings along time: one per chunk, at the chunk's centre.

        Chunks of pure padding get the embedding of the clip's last valid
        chunk, so every row holds real audio's embedding (the inference API
        keeps only the centres inside the audio).

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``(batch, samples)``.
        lens : torch.Tensor, optional
            Relative lengths ``(batch,)``.

        Returns
        -------
        torch.Tensor
            ``(batch, n_chunks, head_input_dim)``.
        torch.Tensor
            ``(n_chunks,)`` chunk centres in seconds.

        Example
        -------
        >>> model = DiverseEmbeddingModel(2, streams=["timbre"], embed_dim=8,
        ...                               depth=1, num_heads=2, chunk_seconds=0.5)
        >>> emb, centres = model.time_embeddings(torch.randn(3, 16000))
        >>> emb.shape, centres.tolist()
        (torch.Size([3, 2, 8]), [0.25, 0.75])
        """
        lens = check_waveform_batch(wavs, lens)
        chunks, chunk_lens, valid = self.chunk(wavs, lens)
        per_chunk = _scatter_chunks(self.embed_chunks(chunks, chunk_lens), valid)
        return self.time_embeddings_from_features((per_chunk, valid))

    def time_embeddings_from_features(self, features):
        """:meth:`time_embeddings` from the output of :meth:`forward_features`.

        With :meth:`forward_head` on the same features, one forward pass
        gives both the clip and the time embeddings.

        Arguments
        ---------
        features : tuple of torch.Tensor
            ``(embeddings, valid)`` from :meth:`forward_features`.

        Returns
        -------
        torch.Tensor
            ``(batch, n_chunks, head_input_dim)``.
        torch.Tensor
            ``(n_chunks,)`` chunk centres in seconds.

        Example
        -------
        >>> model = DiverseEmbeddingModel(2, streams=["timbre"], embed_dim=8,
        ...                               depth=1, num_heads=2, chunk_seconds=0.5).eval()
        >>> emb, centres = model.time_embeddings_from_features(
        ...     model.forward_features(torch.randn(3, 16000)))
        >>> emb.shape, centres.tolist()
        (torch.Size([3, 2, 8]), [0.25, 0.75])
        """
        per_chunk, valid = features
        # Valid chunks are a prefix of each row: padding rows repeat the last one.
        last = (valid.sum(dim=1, keepdim=True) - 1).clamp_min(0)
        index = torch.minimum(torch.arange(valid.shape[1], device=valid.device), last)
        per_chunk = per_chunk.gather(
            1, index[:, :, None].expand(-1, -1, per_chunk.shape[-1])
        )
        n_chunks = per_chunk.shape[1]
        centres = (
            torch.arange(n_chunks, dtype=torch.float64) + 0.5
        ) * self.chunk_seconds
        return per_chunk, centres


def _as_chunk_grid(values, valid):
    """Per-chunk rows already laid out as ``(batch, n_chunks, D)``, zeroed outside ``valid``."""
    return values.view(*valid.shape, values.shape[-1]) * valid[..., None].to(
        values.dtype
    )


def _scatter_chunks(values, valid):
    """Places per-valid-chunk rows ``(n, D)`` into ``(batch, n_chunks, D)``, zeros elsewhere."""
    out = values.new_zeros(*valid.shape, values.shape[-1])
    out[valid] = values
    return out
