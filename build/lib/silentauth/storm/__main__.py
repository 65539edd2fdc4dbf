"""``python -m silentauth.storm``: the same as ``silentauth storm``."""

from __future__ import annotations

import sys

from silentauth.storm.command import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
