"""Using a trained run: the tagger, the HEAR 2021 API and the console commands."""
