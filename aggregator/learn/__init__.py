"""Learning the editor's choices: reading digests as labels, the models, and their evaluation."""
