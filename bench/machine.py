"""What a figure was measured on: CPU, load, versions."""

from __future__ import annotations

import os
import platform
import sqlite3
from importlib import metadata
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
    "pyjwt",
)


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
    return out


def describe() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "platform": platform.platform(),
        "load_average_at_start": load_average(),
        "versions": versions(),
    }
