"""Print the mutation score of the last `mutmut run`, per module and in total.

mutmut 3 records each mutant's test exit code in ``mutants/<source path>.meta``
(JSON, ``exit_code_by_key``). The score counts every mutant the suite had a chance
to notice::

    killed / (killed + survived + no tests + timeout + suspicious)

A timeout or a "suspicious" run (much slower than the clean run) counts against
the suite: such a mutant was not caught by an assertion. Mutants not checked yet are reported, not scored, so a
partial run never looks better than it is: the exit status is 1 while any remain.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

# Exit codes as mutmut 3 reads them (mutmut/stats.py); anything else is "suspicious".
_STATUS_BY_EXIT_CODE: dict[int | None, str] = {
    0: "survived",
    1: "killed",
    3: "killed",  # pytest internal error while importing the mutant
    5: "no tests",
    33: "no tests",
    34: "skipped",
    36: "timeout",
    24: "timeout",
    -24: "timeout",
    152: "timeout",
    255: "timeout",
    37: "killed",  # caught by the type checker
    None: "not checked",
}
_SCORED = ("killed", "survived", "no tests", "timeout", "suspicious")


def status_counts(meta: Path) -> Counter[str]:
    """Count the mutants of one ``.meta`` file by status."""
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    return Counter(_STATUS_BY_EXIT_CODE.get(code, "suspicious") for code in codes.values())


def score(counts: Counter[str]) -> float | None:
    """Killed over every mutant a test could have noticed (None before any ran)."""
    scored = sum(counts[s] for s in _SCORED)
    return counts["killed"] / scored if scored else None


def _row(name: str, counts: Counter[str]) -> str:
    value = score(counts)
    shown = "-" if value is None else f"{value:.1%}"
    return (
        f"{name:<44} {shown:>7}  killed {counts['killed']:4}  "
        f"survived {counts['survived']:3}  no tests {counts['no tests']:3}  "
        f"timeout {counts['timeout']:3}  suspicious {counts['suspicious']:3}"
        f"  skipped {counts['skipped']:3}  unchecked {counts['not checked']:3}"
    )


def main(root: Path = Path("mutants")) -> int:
    """Print one row per mutated module, then the total; 1 if nothing or not all ran."""
    metas = sorted(root.rglob("*.py.meta"))
    if not metas:
        print(f"no mutmut results under {root}/: run `python -m mutmut run` first")
        return 1
    total: Counter[str] = Counter()
    for meta in metas:
        counts = status_counts(meta)
        total += counts
        print(_row(str(meta.relative_to(root)).removesuffix(".meta"), counts))
    print(_row("TOTAL", total))
    return 1 if total["not checked"] else 0


if __name__ == "__main__":
    sys.exit(main())
