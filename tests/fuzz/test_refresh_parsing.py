"""Property tests on refresh-token parsing (``silentauth.core.refresh``).

A refresh token is ``v1.<sid>.<counter>.<mac>``. Whatever text arrives, the
parser either returns the (session, counter) that the server itself issued or
raises :class:`InvalidGrant` — no other exception, no forgery, no truncation.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from silentauth.core.keys import MasterKey
from silentauth.core.refresh import RefreshTokens
from silentauth.errors import InvalidGrant

TOKENS = RefreshTokens(MasterKey(b"k" * 32))
OTHER = RefreshTokens(MasterKey(b"o" * 32))

session_ids = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=16, max_size=64)
counters = st.integers(min_value=0, max_value=10**18 - 1)


@given(session_ids, counters)
def test_issued_tokens_parse_back_to_their_session_and_counter(sid: str, counter: int) -> None:
    assert TOKENS.parse(TOKENS.issue(sid, counter)) == (sid, counter)


@settings(max_examples=300)
@given(st.text(max_size=400))
@example("v1." + "A" * 16 + ".0." + "A" * 43)
@example("v1." + "A" * 16 + ".01." + "A" * 43)
@example("v1." + "A" * 16 + ".-1." + "A" * 43)
@example("v1." + "A" * 16 + ".\u0661." + "A" * 43)  # an Arabic-Indic digit
@example("\x00" * 300)
def test_arbitrary_text_is_refused_with_invalid_grant_only(text: str) -> None:
    with pytest.raises(InvalidGrant):
        TOKENS.parse(text)


@given(session_ids, counters, st.data())
def test_any_single_character_change_is_refused(sid: str, counter: int, data: st.DataObject) -> None:
    token = TOKENS.issue(sid, counter)
    i = data.draw(st.integers(0, len(token) - 1), label="position")
    c = data.draw(st.characters(codec="utf-8").filter(lambda ch: ch != token[i]), label="replacement")
    with pytest.raises(InvalidGrant):
        TOKENS.parse(token[:i] + c + token[i + 1 :])


@given(session_ids, counters, st.data())
def test_truncated_tokens_are_refused(sid: str, counter: int, data: st.DataObject) -> None:
    token = TOKENS.issue(sid, counter)
    cut = data.draw(st.integers(0, len(token) - 1), label="length")
    with pytest.raises(InvalidGrant):
        TOKENS.parse(token[:cut])


@given(session_ids, counters, counters)
def test_counter_of_a_token_cannot_be_moved_forward(sid: str, counter: int, other: int) -> None:
    # Re-using the MAC of counter c for counter c' would let a thief skip ahead
    # of the legitimate holder; the MAC covers the counter.
    if other == counter:
        other = counter + 1
    mac = TOKENS.issue(sid, counter).rsplit(".", 1)[1]
    with pytest.raises(InvalidGrant):
        TOKENS.parse(f"v1.{sid}.{other}.{mac}")


@given(session_ids, counters)
def test_tokens_of_another_server_secret_are_refused(sid: str, counter: int) -> None:
    with pytest.raises(InvalidGrant):
        TOKENS.parse(OTHER.issue(sid, counter))


@given(session_ids, session_ids, st.text(max_size=100))
def test_csrf_proof_is_bound_to_its_session(sid: str, other: str, proof: str) -> None:
    assert TOKENS.check_csrf(sid, TOKENS.csrf_token(sid))
    if other != sid:
        # A proof minted for one session (say the attacker's own) is no proof for another.
        assert not TOKENS.check_csrf(sid, TOKENS.csrf_token(other))
    if proof != TOKENS.csrf_token(sid):
        assert not TOKENS.check_csrf(sid, proof)
