"""The batcher: calls in one event-loop turn share a batch; each gets its own answer."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

import anyio
import pytest

from silentauth.core.batch import Batcher

pytestmark = pytest.mark.anyio


def bounded(test: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """Fail a test that waits more than 5 s.

    A batcher that loses a caller's future leaves that caller waiting forever:
    that must show up as this test failing, not as a suite that never ends.
    """

    @functools.wraps(test)
    async def run() -> None:
        with anyio.fail_after(5):
            await test()

    return run


class Recorder:
    """A runner that doubles numbers, refuses negatives, and remembers its batches."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def run(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(items)
        return [ValueError(f"negative {i}") if i < 0 else i * 2 for i in items]


@bounded
async def test_calls_made_in_one_turn_share_one_batch_in_arrival_order() -> None:
    rec, sizes = Recorder(), []
    batcher = Batcher(rec.run, on_batch=sizes.append)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(50)))
    assert results == [i * 2 for i in range(50)]
    assert rec.batches == [list(range(50))]
    assert sizes == [50]


@bounded
async def test_sequential_calls_each_run_alone() -> None:
    rec = Recorder()
    batcher = Batcher(rec.run)
    assert [await batcher.submit(i) for i in range(3)] == [0, 2, 4]
    assert rec.batches == [[0], [1], [2]]


@bounded
async def test_an_item_error_reaches_its_caller_alone() -> None:
    batcher = Batcher(Recorder().run)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(-1), batcher.submit(3), return_exceptions=True)
    assert results[0] == 2 and results[2] == 6
    assert isinstance(results[1], ValueError) and str(results[1]) == "negative -1"


@bounded
async def test_a_failing_runner_fails_every_caller_of_the_batch_and_not_the_next() -> None:
    calls = 0

    async def flaky(items: list[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("store down")
        return list(items)

    batcher = Batcher(flaky)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert await batcher.submit(7) == 7


@bounded
async def test_a_runner_that_miscounts_fails_the_batch_instead_of_misrouting_answers() -> None:
    async def short(items: list[int]) -> list[int | BaseException]:
        return list(items[:-1])

    batcher = Batcher(short)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert str(results[0]) == "batch runner returned 1 results for 2 items"


@bounded
async def test_batches_are_capped_at_max_size() -> None:
    rec = Recorder()
    batcher = Batcher(rec.run, max_size=8)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(20)))
    assert results == [i * 2 for i in range(20)]
    assert [len(b) for b in rec.batches] == [8, 8, 4]


@bounded
async def test_a_cancelled_caller_leaves_the_others_answered_and_its_work_done() -> None:
    rec = Recorder()
    batcher = Batcher(rec.run)
    doomed = asyncio.ensure_future(batcher.submit(1))
    others = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0)  # the three have queued
    doomed.cancel()
    assert await asyncio.gather(*others) == [4, 6]
    assert doomed.cancelled()
    assert rec.batches == [[1, 2, 3]]


@bounded
async def test_a_call_made_while_a_batch_runs_joins_the_next_batch() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    batches: list[list[int]] = []

    async def slow(items: list[int]) -> list[int | BaseException]:
        batches.append(items)
        if len(batches) == 1:
            started.set()
            await release.wait()  # a store round trip in flight
        return list(items)

    batcher = Batcher(slow)
    first = asyncio.ensure_future(batcher.submit(1))
    await started.wait()
    second = asyncio.ensure_future(batcher.submit(2))
    third = asyncio.ensure_future(batcher.submit(3))
    await asyncio.sleep(0)
    assert await asyncio.gather(second, third) == [2, 3]  # not held up by the first batch
    release.set()
    assert await first == 1
    assert batches == [[1], [2, 3]]


def test_max_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"^max_size must be at least 1$"):
        Batcher(Recorder().run, max_size=0)


@bounded
async def test_a_max_size_of_one_runs_every_call_alone() -> None:
    rec = Recorder()
    batcher = Batcher(rec.run, max_size=1)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(3))) == [0, 2, 4]
    assert rec.batches == [[0], [1], [2]]


@bounded
async def test_by_default_a_batch_holds_up_to_128_calls() -> None:
    rec = Recorder()
    batcher = Batcher(rec.run)
    await asyncio.gather(*(batcher.submit(i) for i in range(129)))
    assert [len(b) for b in rec.batches] == [128, 1]


def test_a_batch_left_open_by_a_stopped_loop_does_not_trap_the_next_loop() -> None:
    rec = Recorder()
    batcher = Batcher(rec.run)

    async def submit_and_stop() -> None:
        # The loop stops in the turn in which this submit opens its batch,
        # before the batch is drained.
        asyncio.ensure_future(batcher.submit(1))

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(submit_and_stop())
        # Shut down as a server would: cancel what is left (the drain never started).
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
    finally:
        loop.close()

    async def later() -> int:
        return await asyncio.wait_for(batcher.submit(2), timeout=5)

    assert asyncio.run(later()) == 4
