"""``python -m silentauth.storm``: the same as ``silentauth storm``."""

from __future__ import annotations

import sys

from silentauth.cli import main

if __name__ == "__main__":
    sys.exit(main(["storm", *sys.argv[1:]]))
