"""The set-up the rotation-rule state machines share: one session on the real core.

Each machine drives the real :class:`SessionService` (SQLite in memory, a virtual
clock) for one user with one session; the machines differ in the rule and in the
actors they model, not in how the session is made.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from hypothesis.stateful import RuleBasedStateMachine

from silentauth.clock import FakeClock
from silentauth.core.assembly import TokenCore
from silentauth.settings import Settings
from silentauth.stores.sqlite import SQLiteStore
from tests.conftest import FAST_PASSWORDS


class OneSessionMachine(RuleBasedStateMachine):
    """A state machine over one session of ``alice``; subclasses add the actors."""

    def open_session(self, rotation_rule: str, **settings: Any) -> None:
        """Start the core under ``rotation_rule`` and log in: ``sid`` and ``legit`` are set."""
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        s = Settings(
            database_url="sqlite:///:memory:",
            secret_key=f"{rotation_rule}-rule-machine-secret-0123456789abcdef",
            rate_limit_login=None,
            rate_limit_refresh=None,
            rotation_rule=rotation_rule,
            # Lifetimes out of reach: expiry is not what these machines are about.
            refresh_idle_ttl=365 * 86400,
            session_max_age=3 * 365 * 86400,
            **settings,
        )
        self.core = TokenCore(
            settings=s, store=SQLiteStore(s.database_url), clock=self.clock, passwords=FAST_PASSWORDS,
            rng=random.Random(1),
        )
        self.run(self.core.store.open())
        self.run(self.core.start())
        self.run(self.core.users.ensure("alice", "secret"))
        grant = self.run(self.core.service.login("alice", "secret"))
        self.sid: str = grant.session.id
        self.legit: str = grant.refresh_token

    def run(self, coro: Any) -> Any:
        """Run ``coro`` on the machine's own event loop."""
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        if hasattr(self, "core"):
            self.run(self.core.store.close())
            self.loop.close()
