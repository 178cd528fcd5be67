"""Audio loading, manifests, labels, samplers and preparation helpers."""
