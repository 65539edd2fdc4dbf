"""Persistence: engines for the core's :class:`~silentauth.core.ports.Store` port."""

from __future__ import annotations

from silentauth.stores.base import open_store

__all__ = ["open_store"]
