"""Building blocks of the models: the ViT encoder, token embeddings, stream fusion, patch masking and CLAR's ResNets."""
