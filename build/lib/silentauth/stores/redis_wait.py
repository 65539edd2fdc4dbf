"""A Redis write acknowledged by replicas: the script, then ``WAIT`` on the same connection.

``WAIT numreplicas timeout`` blocks until the writes sent *on its connection*
reached that many replicas, so it must follow the script on one connection:
a pipeline on one Redis; on a cluster, the two commands sent together to the
master of the script's slot (redis-py's cluster pipeline would send a keyless
``WAIT`` to every master and add up the answers, which hides the one that
matters). Fewer acknowledgements than asked raise
:class:`~silentauth.errors.StoreUnavailable`: the write may stand on the
master alone, and callers answer 503 so that the client retries.
"""

from __future__ import annotations

from typing import Any

import redis.exceptions as rexc
from redis.asyncio.cluster import PipelineCommand, RedisCluster

from silentauth.errors import StoreUnavailable


async def replicated(
    client: Any, cluster: bool, script: Any, keys: list[str], args: list[Any], replicas: int, timeout: float
) -> Any:
    """Run ``script`` and wait until ``replicas`` replicas have its effect; return its reply."""
    # Half the socket timeout: WAIT answers (with its count) before the socket gives up.
    wait_ms = max(1, int(timeout * 500))
    for attempt in range(2):
        if cluster:
            reply, acked = await _on_master(client, script.sha, keys, args, replicas, wait_ms)
        else:
            pipe = client.pipeline(transaction=False)
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            pipe.execute_command("WAIT", replicas, wait_ms)
            reply, acked = await pipe.execute(raise_on_error=False)
        if isinstance(reply, rexc.NoScriptError) and attempt == 0:
            # A restarted or promoted server has not seen the script yet.
            await client.script_load(script.script)
            continue
        if isinstance(reply, Exception):
            raise reply
        if isinstance(acked, Exception):
            raise acked
        if int(acked) < replicas:
            raise StoreUnavailable(f"Redis: write acknowledged by {acked} of {replicas} replicas")
        return reply
    raise AssertionError("unreachable")  # pragma: no cover


async def _on_master(
    client: RedisCluster, sha: str, keys: list[str], args: list[Any], replicas: int, wait_ms: int
) -> tuple[Any, Any]:
    await client.initialize()  # a no-op unless an error asked for a fresh slot map
    node = client.get_node_from_key(keys[0])
    if node is None:  # pragma: no cover - only asked for a replica
        raise StoreUnavailable("Redis Cluster: no master for the slot")
    script_call = PipelineCommand(0, "EVALSHA", sha, len(keys), *keys, *args)
    wait_call = PipelineCommand(1, "WAIT", replicas, wait_ms)
    try:
        await node.execute_pipeline([script_call, wait_call])
    except (rexc.ConnectionError, rexc.TimeoutError, OSError):
        _refresh(client)
        raise
    if isinstance(script_call.result, (rexc.MovedError, rexc.ClusterDownError, rexc.TryAgainError)):
        # The slot moved (a failover finished) or has no master yet: learn the
        # new map before the next call; this one answers 503.
        _refresh(client)
    return script_call.result, wait_call.result


def _refresh(client: RedisCluster) -> None:
    # redis-py's own commands set this after a failure; its next call (or ours,
    # through initialize()) then reloads the slot map from a live node.
    client._initialize = True
