"""Polling: fetching feeds politely, parsing their bodies, and the pass that stores what changed."""
