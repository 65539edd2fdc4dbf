"""The token service: Starlette routes around :mod:`silentauth.core`."""

from __future__ import annotations

from silentauth.server.app import create_app

__all__ = ["create_app"]
