"""Training augmentations, of two kinds by what they act on.

* Waveform augmentations: SpeechBrain's signature ``(wavs, lengths) -> wavs``,
  with ``wavs`` padded ``(batch, samples)`` and ``lengths`` relative
  ``(batch,)``, that of :mod:`speechbrain.augment.time_domain`
  (``DropChunk``, ``AddNoise``...). CLAR's seven in :mod:`.waveform`
  (:class:`~.waveform.PitchShift`, :class:`~.waveform.Fade`,
  :class:`~.waveform.WhiteNoise`, :class:`~.waveform.ColouredNoise`,
  :class:`~.waveform.TimeMask`, :class:`~.waveform.TimeShift`,
  :class:`~.waveform.TimeStretch`) and their :class:`~.waveform.AugmentationChain`
  (a :class:`torch.nn.Sequential`) have it, so SpeechBrain's augmenters,
  an :class:`speechbrain.augment.augmenter.Augmenter` (which returns
  ``(wavs, lengths)``) included, fill the same YAML slot (CLAR's
  ``augmentation``) or the same chain; :func:`~.waveform.augment_waveforms`
  makes the call. Mixup (:func:`~.spectrogram.mixup`, applied by the
  classifier Brain) also acts on waveforms, with their targets:
  ``(wavs, lens, targets) -> (wavs, lens, targets)``.
* Feature augmentations: ``feats -> feats`` on the normalised fbank features
  ``(B, T, F)`` inside the model (``spec_augment`` of
  :class:`~craft_modules.models.craft.CraftClassifier`), in training mode
  only: :class:`~.spectrogram.SpecAugment` (torchaudio's masking) and
  :class:`~.spectrogram.NoiseAugment` (SSAST's noise and shift), chained by a
  :class:`torch.nn.Sequential`.
"""
