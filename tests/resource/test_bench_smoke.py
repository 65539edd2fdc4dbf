"""``bench/resource.py`` measures what it says, run with tiny sizes.

The numbers are ``make bench``'s job; here each framework's protected route,
served for real next to a live token service, must refuse what a protected
route refuses (no token, an empty ``Bearer``, a forged signature, a revoked
session) and accept a valid token, under load too: every token-bearing
request of the run got a 200, every anonymous one a 401. The reported rates
and ratios must be the medians of the run's own samples.
"""

from __future__ import annotations

import statistics

import pytest

from bench import resource

PROBE = {"open": 200, "valid": 200, "no_token": 401, "empty_bearer": 400, "forged": 401, "revoked": 401}


@pytest.mark.slow  # starts a token service and four API servers: ~15 s
def test_a_tiny_run_refuses_and_accepts_what_it_should_and_reports_its_own_medians() -> None:
    names, missing = resource.available()
    assert names, f"no framework installed: {missing}"
    result = resource.run(seconds=0.25, rounds=2, connections=2, warmup=0.1, anonymous_load=True,
                          app_requests=20, app_rounds=1)
    assert set(result["frameworks"]) == set(names)
    for name, f in result["frameworks"].items():
        assert f["probe"] == PROBE, name
        assert f["errors"] == {"unprotected": {}, "protected": {}}, name  # every request was a 200
        samples = f["samples"]
        assert len(samples["unprotected"]) == len(samples["protected"]) == 2
        assert all(rate > 0 for rate in samples["unprotected"] + samples["protected"]), name
        assert f["ratio"] == round(statistics.median(samples["protected"]) / statistics.median(samples["unprotected"]), 3)
        pairs = zip(samples["unprotected"], samples["protected"], strict=True)
        assert f["ratio_paired"] == round(statistics.median(p / o for o, p in pairs), 3)
        assert 0 < f["in_process"]["open_us"] and 0 < f["in_process"]["protected_us"], name
        assert f["anonymous"]["ok_rps"] == [0.0, 0.0], name  # not one anonymous request got through
        assert set(f["anonymous"]["errors"]) == {"401"} and f["anonymous"]["errors"]["401"] > 0, name
    assert result["ok"] is all(f["ratio"] >= resource.TARGET for f in result["frameworks"].values())
