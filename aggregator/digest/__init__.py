"""Digests as the editor sees them: drafts in each style, publishing into the running file, and manifests."""
