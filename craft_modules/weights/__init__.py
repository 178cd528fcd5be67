"""Loading weights: pretrained -> classifier transfer and the official SSAST/AST checkpoints."""
