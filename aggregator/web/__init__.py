"""The review desk: a local web page where the editor accepts, moves and rejects candidates."""
