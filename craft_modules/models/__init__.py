"""The models a recipe YAML instantiates: CRAFT (pretrainer, classifier), CLAR and the diverse embeddings."""
