"""Loading weights: the recipes' initialisation, pretrained -> classifier transfer, official SSAST/AST checkpoints, stage-1 streams and run folders."""

from craft_modules.weights.loading import initialise, weight_sources

__all__ = ["initialise", "weight_sources"]
