"""A setting that names an object, ``package.module:attribute``, as uvicorn names its app."""

from __future__ import annotations

import json
import os.path

import pytest

from silentauth.core.plugins import load_object
from silentauth.errors import ConfigError


class Plugin:
    """A class named by a setting: instantiated without arguments."""

    made = 0

    def __init__(self) -> None:
        Plugin.made += 1


def test_a_function_or_nested_attribute_is_returned_as_it_is() -> None:
    assert load_object("CLAIMS", "json:dumps") is json.dumps
    assert load_object("CLAIMS", "  os:path.join \n") is os.path.join  # a pasted value's blanks


def test_a_class_is_instantiated_once() -> None:
    before = Plugin.made
    plugin = load_object("IDENTITY", f"{__name__}:Plugin")
    assert isinstance(plugin, Plugin) and Plugin.made == before + 1


@pytest.mark.parametrize(
    "spec, why",
    [
        ("json", "'json' is not 'package.module:attribute'"),
        (":dumps", "':dumps' is not 'package.module:attribute'"),
        ("json:", "'json:' is not 'package.module:attribute'"),
        ("tests.nowhere:x", "cannot import 'tests.nowhere': No module named 'tests.nowhere'"),
        ("json:missing", "'json' has no attribute 'missing'"),
        ("os:path.missing", "'os' has no attribute 'path.missing'"),
        ("json:dumps:x", "'json' has no attribute 'dumps:x'"),  # the module is what precedes the first colon
    ],
)
def test_a_bad_spec_is_a_config_error_for_the_setting(spec: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_object("IDENTITY", spec)
    assert err.value.name == "IDENTITY"
    assert str(err.value) == f"invalid setting SILENTAUTH_IDENTITY: {why}"
    # The operator sees one line, not the import machinery's traceback under it.
    assert err.value.__context__ is None or err.value.__suppress_context__
