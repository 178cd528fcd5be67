"""Audio loading, manifests, datasets, labels, samplers and preparation helpers."""
