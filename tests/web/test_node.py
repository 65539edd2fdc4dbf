"""Run the browser client's unit tests (``tests/web/*.test.mjs``) with ``node --test``.

The axios adapter is tested against real axios from the npm registry: it is
installed into ``tests/web/node_modules`` (from ``package-lock.json``) on first use.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import need_binary

HERE = Path(__file__).resolve().parent
SUITES = sorted(p.name for p in HERE.glob("*.test.mjs"))


def ensure_node_modules() -> Path:
    """``tests/web/node_modules`` (axios, typescript, jose, oauth4webapi), from the lock file if missing."""
    modules = HERE / "node_modules"
    needed = ("axios", "typescript", "jose", "oauth4webapi")
    if not all((modules / name / "package.json").exists() for name in needed):
        npm = need_binary("npm")
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=HERE, check=True, timeout=180, capture_output=True,
        )
    return modules


@pytest.fixture(scope="module")
def node() -> str:
    path = need_binary("node", "nodejs")
    ensure_node_modules()
    return path


def assert_node_suite_passes(node: str, suite: str) -> None:
    """Run ``tests/web/<suite>`` under ``node --test``: it must run tests and fail none."""
    run = subprocess.run(
        [node, "--test", suite], cwd=HERE, capture_output=True, text=True, timeout=120
    )
    summary = [line for line in run.stdout.splitlines() if line.startswith(("# pass", "# fail", "# cancelled"))]
    assert run.returncode == 0, f"{suite} failed:\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    assert summary and "# fail 0" in summary and "# pass 0" not in summary, run.stdout[-2000:]


@pytest.mark.parametrize("suite", SUITES)
def test_browser_client_unit_suite_passes_under_node(node: str, suite: str) -> None:
    assert_node_suite_passes(node, suite)


def test_every_unit_suite_is_collected() -> None:
    assert {"client.test.mjs", "axios.test.mjs", "destinations.test.mjs", "realtime.test.mjs"} <= set(SUITES)
