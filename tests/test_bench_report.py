"""``python -m bench`` prints what the resource benchmark records (bench/report.py).

Rendered from a run kept in ``bench/results``: the table must carry the paired
ratios and FastAPI's ``Depends`` price that ``bench/resource.py`` and
``bench/app_cost.py`` write into the JSON, not only the ratios of medians.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.report import render

RUN = Path(__file__).resolve().parent.parent / "bench" / "results" / "resource-2026-12-01.json"


def _doc(run: dict[str, Any]) -> dict[str, Any]:
    return {"machine": run["machine"], "started": run["started"], "wall_s": run["wall_s"],
            "results": {"resource": run["resource"]}}


def _row(text: str, framework: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(framework + " "))
    return line.split()


def test_resource_table_prints_paired_ratios_and_the_depends_price() -> None:
    run = json.loads(RUN.read_text())["runs"][0]
    text = render(_doc(run))
    head = next(line for line in text.splitlines() if line.startswith("framework "))
    assert "paired" in head and "paired per core" in head
    for name, f in run["resource"]["frameworks"].items():
        cells = " ".join(_row(text, name))
        for key in ("ratio_paired", "ratio_per_core_paired"):
            assert f" {f[key]:.2f} " in f" {cells} ", (name, key)
    depends = run["resource"]["frameworks"]["fastapi"]["in_process"]["depends_us"]
    assert f"Depends {depends:.1f}" in " ".join(_row(text, "fastapi"))
    verdict = "met" if run["resource"]["ok_paired"] else "NOT met"
    assert f"paired (both) {verdict}" in text


def test_a_run_recorded_before_the_paired_ratios_still_renders() -> None:
    run = json.loads(RUN.read_text())["runs"][0]
    for f in run["resource"]["frameworks"].values():
        del f["ratio_paired"], f["ratio_per_core_paired"]
        f["in_process"].pop("depends_us", None)
    del run["resource"]["ok_paired"]
    text = render(_doc(run))
    assert "Depends" not in text and "paired (both)" not in text
    assert _row(text, "drf")[-1] == "ok"
