"""RFC 8707 resource indicators: the ``aud`` a token gets and what a renewal reads back from it."""

from __future__ import annotations

import pytest

from silentauth.core.resources import audience, grant, narrow, of_audience
from silentauth.errors import InvalidTarget

DEFAULT = "https://auth.example"


@pytest.mark.parametrize(
    "resources",
    ["", "https://files.example", "https://files.example https://billing.example"],
)
def test_a_renewed_token_is_for_the_same_apis_as_the_one_it_replaces(resources: str) -> None:
    # A renewal mints from the old token's ``aud`` alone: reading it back must give the
    # resources it was minted for, or a down-scoped token would widen (or narrow) silently.
    assert of_audience(audience(resources, DEFAULT), DEFAULT) == resources


def test_a_token_for_the_default_audience_names_no_resource() -> None:
    assert audience("", DEFAULT) == DEFAULT
    assert of_audience(DEFAULT, DEFAULT) == ""


def test_several_resources_become_a_list_audience_in_request_order() -> None:
    assert audience("https://b.example https://a.example", DEFAULT) == ["https://b.example", "https://a.example"]
    assert of_audience(["https://b.example", "https://a.example"], DEFAULT) == "https://b.example https://a.example"


def test_a_refresh_may_ask_again_for_every_resource_its_login_was_granted() -> None:
    assert narrow("https://b.example https://a.example", "https://a.example https://b.example") == (
        "https://b.example https://a.example"
    )


def test_a_refresh_may_narrow_to_some_of_the_granted_resources() -> None:
    granted = "https://a.example https://b.example https://c.example"
    assert narrow("https://c.example https://a.example", granted) == "https://c.example https://a.example"
    assert narrow(None, granted) == granted


def test_a_refresh_that_widens_the_resources_is_told_so() -> None:
    with pytest.raises(InvalidTarget) as refused:
        narrow("https://a.example https://evil.example", "https://a.example")
    assert refused.value.error_description == "A refresh may narrow the resources, never widen them."


def test_a_request_may_name_ten_resources_and_not_eleven() -> None:
    allowed = tuple(f"https://api{i}.example" for i in range(11))
    assert grant(" ".join(allowed[:10]), allowed) == " ".join(allowed[:10])
    with pytest.raises(InvalidTarget) as refused:
        grant(" ".join(allowed), allowed)
    assert refused.value.error_description == "At most 10 resources per request."


def test_an_unknown_resource_is_named_in_the_answer_cut_to_200_characters() -> None:
    allowed = ("https://api.example",)
    with pytest.raises(InvalidTarget) as refused:
        grant("https://evil.example", allowed)
    assert refused.value.error_description == "Unknown resource 'https://evil.example'."
    # An attacker's megabyte-long value is not echoed back whole.
    with pytest.raises(InvalidTarget) as refused:
        grant("https://" + "x" * 5000, allowed)
    assert refused.value.error_description == f"Unknown resource {'https://' + 'x' * 192!r}."
