"""Persistence: one :class:`~silentauth.stores.base.Store` protocol, many engines."""

from __future__ import annotations

from silentauth.stores.base import Store, open_store

__all__ = ["Store", "open_store"]
