"""``make bench`` (``python -m bench``): silentauth measured against its peers.

Modules, each exposing ``run() -> dict``:

- :mod:`bench.refresh` -- refresh endpoint vs simplejwt and flask-jwt-extended,
  each with its stack's no-op baseline;
- :mod:`bench.login` -- password logins at equal Argon2id cost;
- ``bench.resource``, ``bench.client_overhead``, ``bench.stores`` -- written
  alongside (resource kit, Python client, store engines); included when present.

Every figure is printed with the machine, the versions and the spread over
rounds, and saved as JSON under ``bench/results/``. The machine is usually
shared, so absolute rates are noisy: ratios measured in the same run, and the
server CPU time per request, are what to read.
"""
