"""DynamicBatcher, in process: a lone request is not held for the batch timeout; concurrent ones share calls."""

from __future__ import annotations

import asyncio

from litforge.serve.batcher import DynamicBatcher


def run_with_batcher(scenario, batch_timeout: float) -> list[list[int]]:
    """Run ``scenario(batcher)`` on a fresh loop; return the batches the model was called with."""
    calls: list[list[int]] = []

    def model(items: list[int]) -> list[int]:
        calls.append(list(items))
        return [2 * item for item in items]

    async def main() -> None:
        batcher = DynamicBatcher(model, max_batch_size=16, batch_timeout=batch_timeout)
        batcher.start()
        try:
            await scenario(batcher)
        finally:
            await batcher.stop()

    asyncio.run(main())
    return calls


def test_a_lone_request_is_answered_without_waiting_for_the_batch_timeout() -> None:
    async def one_client(batcher: DynamicBatcher) -> None:
        for value in range(3):  # a 60 s timeout would fail this test's 10 s limit if it were awaited
            assert await asyncio.wait_for(batcher.submit(value), 10) == 2 * value

    assert run_with_batcher(one_client, batch_timeout=60) == [[0], [1], [2]]


def test_concurrent_requests_share_model_calls_and_get_their_own_answers() -> None:
    async def eight_clients(batcher: DynamicBatcher) -> None:
        async def client(offset: int) -> None:
            for step in range(5):
                value = 100 * offset + step
                assert await batcher.submit(value) == 2 * value

        await asyncio.wait_for(asyncio.gather(*(client(k) for k in range(8))), 10)

    calls = run_with_batcher(eight_clients, batch_timeout=0.5)
    assert sorted(v for call in calls for v in call) == sorted(
        100 * k + s for k in range(8) for s in range(5)
    )
    assert len(calls) < 40 and max(map(len, calls)) == 8


def test_an_answer_the_app_fails_to_give_is_counted_as_a_5xx() -> None:
    """A handler that raises is answered 500 by the server's error handler, outside the guard: /metrics
    counts it anyway (its answers.5xx stayed 0)."""
    import asyncio
    import json

    import pytest

    from litforge.serve.codecs import RequestLimits
    from litforge.serve.guard import RequestGuard
    from litforge.serve.inference import Counters

    async def broken(payload):
        raise RuntimeError("the model's runtime failed")

    counters = Counters()
    guard = RequestGuard(
        None,
        path="/predict",
        max_bytes=1000,
        limits=RequestLimits(row_shape=(2,)),
        counters=counters,
        handler=broken,
    )
    body = json.dumps({"inputs": [[1.0, 2.0]]}).encode()
    scope = {"type": "http", "path": "/predict", "method": "POST", "headers": []}

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        pass

    with pytest.raises(RuntimeError):
        asyncio.run(guard(scope, receive, send))
    assert counters.snapshot()["answers"] == {"2xx": 0, "4xx": 0, "5xx": 1}
