"""aggregator: poll AI/ML blogs, pick the posts for a monthly digest, and draft it."""

import sys

__version__ = "0.1.0"

# httpx imports its own command-line client (rich's console, syntax and progress, click, pygments) whenever
# those are installed, and typer installs them: about 50 ms of each cron run's start-up (bench_update's
# start-up floor). aggregator never runs that client, so its module is marked absent and httpx takes the
# fallback it has for installs without its CLI extras. A process that imported httpx first keeps the real one.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
