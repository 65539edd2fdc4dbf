"""The peers we measure against, each as small as its documentation allows.

- :mod:`bench.peers.simplejwt_app`: djangorestframework-simplejwt,
  ``TokenObtainPairView`` + ``TokenRefreshView`` with ``ROTATE_REFRESH_TOKENS``
  and ``BLACKLIST_AFTER_ROTATION`` on, on SQLite.
- :mod:`bench.peers.flask_app`: flask-jwt-extended, explicit refresh with a new
  refresh token per refresh and the old one's ``jti`` in a SQLite blocklist
  (the documented "database blocklist" pattern).

Both use SQLite in WAL mode with ``synchronous=NORMAL`` (as our SQLite store
does) and verify passwords with Argon2id at our default cost, so that a login
comparison measures the stacks, not the password hash settings.
"""

ARGON2_TIME_COST = 2
ARGON2_MEMORY_KIB = 19456
ARGON2_PARALLELISM = 1
