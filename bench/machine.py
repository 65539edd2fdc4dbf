"""What a figure was measured on: CPU, load, versions."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "silentauth",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "granian",
    "cryptography",
    "argon2-cffi",
    "django",
    "djangorestframework",
    "djangorestframework-simplejwt",
    "flask",
    "flask-jwt-extended",
    "django-oauth-toolkit",
    "pyjwt",
)
OIDC_DIR = Path(__file__).resolve().parent / "peers" / "oidc"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out.update(_node_versions())
    return out


def _node_versions() -> dict[str, str]:
    """The Node.js and oidc-provider the node peer runs on (bench/peers/oidc/node_modules)."""
    out = {"node": "not installed", "oidc-provider": "not installed"}
    try:
        node = subprocess.run([str(OIDC_DIR / "node_modules" / ".bin" / "node"), "--version"],
                              capture_output=True, text=True, timeout=10, check=True)
        out["node"] = node.stdout.strip().lstrip("v")
        package = json.loads((OIDC_DIR / "node_modules" / "oidc-provider" / "package.json").read_text())
        out["oidc-provider"] = str(package["version"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        pass
    return out


def describe() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "platform": platform.platform(),
        "load_average_at_start": load_average(),
        "versions": versions(),
    }
