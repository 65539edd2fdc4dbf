"""When may a refresh token that was already rotated still be honoured?

The session service swaps the session's counter from ``c`` to ``c + 1`` when
token ``c`` is presented (compare-and-swap). When the swap fails because the
counter is already ahead, a *rotation rule* decides what the late token means.
Four rules are known by name (setting ``ROTATION_RULE``); ``silentauth chaos``
measures them against lost answers, sleeping devices, stock OAuth clients and
thieves (see SECURITY.md for the figures):

``grace``
    Token ``c`` yields its successor again only while the counter is ``c + 1``
    and the rotation is at most ``REUSE_GRACE`` seconds old. Anything later
    is reuse and revokes the session. A client that never heard the answer
    and retries after the window is logged out as a thief.
``burst`` (default)
    Like ``grace``, but within ``REUSE_GRACE`` of the last rotation a token up
    to :data:`BURST_GENERATIONS` behind yields the session's current token, so
    lock-free multi-threaded clients (Authlib's ``OAuth2Session`` refreshing
    ``c -> c + 2`` while a thread still holds ``c``) are not taken for thieves.
    After the window every rotated token is reuse, exactly as with ``grace``:
    the documented promise "a rotated token presented after the grace window
    is theft" holds.
``until_used``
    Token ``c`` yields its successor for as long as the successor has not
    been used (the counter is still ``c + 1``), as Supabase Auth does. A
    thief who gets in while the victim is idle shares the victim's lineage
    from then on and is never told apart.
``late_once``
    Within ``REUSE_GRACE`` of the last rotation, a token up to
    :data:`BURST_GENERATIONS` behind yields the session's current token (the
    ``c -> c + 2`` and more of lock-free multi-threaded clients); within
    :data:`RETRY_WINDOW`, a token up to three behind does (a retry after a read
    timeout, also of a late honour whose answer was lost). After the window,
    token ``c`` with the successor still unused is honoured: the counter jumps
    by two (``c + 1 -> c + 3``), so whoever holds the unused ``c + 1`` (a thief
    who got in first) is later refused as reuse, and so is a second late
    replay of ``c`` (the late answer lost as well, and no retry inside the
    window); anything else is reuse.

With counter semantics, ``counter == c + 1`` means exactly "the successor of
``c`` has never been presented": presenting it would have moved the counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from silentauth.core.ports import SessionRecord

RuleName = Literal["grace", "burst", "until_used", "late_once"]
RULES: tuple[RuleName, ...] = ("grace", "burst", "until_used", "late_once")
# ``late_once`` logs out the fewest legitimate clients in ``silentauth chaos``, but it
# honours a rotated token after the grace window (once), which the service has always
# promised to treat as theft; ``burst`` keeps that promise. See SECURITY.md.
DEFAULT_RULE: RuleName = "burst"
# A refresh storm of a lock-free client moves the counter several generations while
# one thread still holds the oldest token: 20 Authlib threads were seen 4 behind.
BURST_GENERATIONS = 10
# ``late_once`` answers a token up to three behind with the live token for this
# long after the last rotation, at least REUSE_GRACE: a client whose
# answer was lost retries after its read timeout (often 30 s) plus back-off, and
# its retry of a late-honoured token must not be taken for reuse.
RETRY_WINDOW = 120.0
# How far a late honour moves the counter: past the unused successor, so its holder
# (if any) is refused later.
LATE_JUMP = 2

# ``grace``: hand out the token for ``counter`` (no store change);
# ``late``: jump the stored counter by two and hand out the new token;
# ``reuse``: revoke the session.
Action = Literal["grace", "late", "reuse"]


@dataclass(frozen=True)
class Verdict:
    """What to do with a token presented behind the stored counter."""

    action: Action
    counter: int = 0


def judge(rule: RuleName, presented: int, s: SessionRecord, now: float, grace: float) -> Verdict:
    """The verdict of ``rule`` on token ``presented`` against the live row ``s``.

    Only called when the compare-and-swap failed and ``s.counter > presented``.
    """
    behind = s.counter - presented
    age = now - s.rotated_at
    fresh = age <= grace
    if rule == "grace":
        return Verdict("grace", presented + 1) if behind == 1 and fresh else Verdict("reuse")
    if rule == "burst":
        return Verdict("grace", s.counter) if fresh and behind <= BURST_GENERATIONS else Verdict("reuse")
    if rule == "until_used":
        return Verdict("grace", presented + 1) if behind == 1 else Verdict("reuse")
    retry = age <= max(grace, RETRY_WINDOW) and behind <= LATE_JUMP + 1
    if (fresh and behind <= BURST_GENERATIONS) or retry:
        # The live token itself: every racer ends up on the one current token.
        return Verdict("grace", s.counter)
    if behind == 1:
        # The successor was never used. (Honouring "three behind" too would save a
        # client whose late answer was lost as well, but lets an owner and a thief
        # who each rotate once per visit orphan each other for ever: found by
        # tests/fuzz/test_rotation_rule_machine.py.)
        return Verdict("late", s.counter + LATE_JUMP)
    return Verdict("reuse")
