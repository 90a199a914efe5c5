"""Entry point for `python -m aggregator`."""

from aggregator.cli import main

if __name__ == "__main__":  # not when multiprocessing imports this module in a worker
    main()
