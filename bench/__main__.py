"""``python -m bench``: run the side-by-side benchmark (see bench/run.py)."""

from bench.run import main

main()
