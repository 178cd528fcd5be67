"""Training augmentations: on spectrograms (SpecAugment, mixup, noise) and on waveforms (CLAR's seven)."""
