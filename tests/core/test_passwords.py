from __future__ import annotations

import pytest

from silentauth.core.passwords import MAX_PASSWORD_BYTES, Passwords, normalize_username
from silentauth.errors import InvalidRequest


def test_hashes_are_argon2id_and_verify() -> None:
    pw = Passwords(time_cost=1, memory_cost=1024)
    h = pw.hash("correct horse")
    assert h.startswith("$argon2id$")
    assert pw.verify_sync(h, "correct horse")
    assert not pw.verify_sync(h, "wrong")


def test_the_configured_cost_is_the_cost_paid() -> None:
    pw = Passwords(time_cost=1, memory_cost=1024, parallelism=1)
    assert pw.parameters == "argon2id t=1 m=1024KiB p=1"
    # The hash records what was spent on it: argon2-cffi's defaults (64 MiB) would show here.
    assert pw.hash("x").startswith("$argon2id$v=19$m=1024,t=1,p=1$")


def test_default_parameters_meet_owasp_minimum() -> None:
    assert Passwords().parameters == "argon2id t=2 m=19456KiB p=1"


def test_unknown_user_runs_a_full_verify_and_fails() -> None:
    pw = Passwords(time_cost=1, memory_cost=1024)
    assert not pw.verify_sync(None, "silentauth dummy password")


def test_a_password_that_is_not_unicode_text_cannot_be_set() -> None:
    with pytest.raises(InvalidRequest) as exc:
        Passwords(time_cost=1, memory_cost=1024).hash("lone \ud800 surrogate")
    assert exc.value.error_description == "The password is not valid Unicode text."


def test_a_password_of_exactly_the_maximum_length_works() -> None:
    pw = Passwords(time_cost=1, memory_cost=1024)
    longest = "é" * (MAX_PASSWORD_BYTES // 2)  # 1024 bytes of UTF-8
    assert pw.verify_sync(pw.hash(longest), longest)


def test_oversized_password_is_refused_cheaply() -> None:
    pw = Passwords(time_cost=1, memory_cost=1024)
    with pytest.raises(InvalidRequest) as exc:
        pw.hash("x" * 5000)
    assert exc.value.error_description == "The password is longer than 1024 bytes."
    assert not pw.verify_sync(pw.hash("x"), "x" * 5000)


def test_usernames_that_differ_only_by_normalisation_are_one_account() -> None:
    assert normalize_username("Alice") == normalize_username("ａｌｉｃｅ") == "alice"
    assert normalize_username("ﬁona") == "fiona"


@pytest.mark.parametrize(
    ("bad", "description"),
    [
        ("", "The user name must be 1-150 characters."),
        ("   ", "The user name must be 1-150 characters."),
        ("x" * 151, "The user name must be 1-150 characters."),
        ("a\x00b", "The user name contains control characters."),
        ("tab\there", "The user name contains control characters."),
    ],
)
def test_bad_usernames_are_invalid_request(bad: str, description: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        normalize_username(bad)
    assert exc.value.error_description == description


def test_a_user_name_of_exactly_the_maximum_length_is_accepted() -> None:
    assert normalize_username("X" * 150) == "x" * 150
