"""Front ends that turn a padded waveform batch into model inputs: SSAST's filterbank, CLAR's spectrogram and the diverse streams."""
