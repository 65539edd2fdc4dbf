"""Plug-ins named by a setting: ``package.module:attribute``.

The identity provider, the claims hook and the lifetime hook can each be
passed to the app factory as objects or named in the environment
(``SILENTAUTH_IDENTITY=myapp.auth:directory``), as uvicorn names its app. A
class is instantiated without arguments; anything else is used as it is.
"""

from __future__ import annotations

import importlib
from typing import Any

from silentauth.errors import ConfigError


def load_object(setting: str, spec: str) -> Any:
    """The object ``spec`` names, or :class:`ConfigError` for ``setting``."""
    module_name, sep, attr = spec.strip().partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(setting, f"{spec!r} is not 'package.module:attribute'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(setting, f"cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(setting, f"{module_name!r} has no attribute {attr!r}") from None
    return target() if isinstance(target, type) else target
