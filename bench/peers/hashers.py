"""Django's Argon2 hasher at silentauth's default cost (t=2, m=19 MiB, p=1)."""

from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher

from bench.peers import ARGON2_MEMORY_KIB, ARGON2_PARALLELISM, ARGON2_TIME_COST


class BenchArgon2PasswordHasher(Argon2PasswordHasher):
    """Same Argon2id parameters as ``silentauth.core.passwords.Passwords()``."""

    time_cost = ARGON2_TIME_COST
    memory_cost = ARGON2_MEMORY_KIB
    parallelism = ARGON2_PARALLELISM
