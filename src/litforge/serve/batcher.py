"""Dynamic batching on an asyncio event loop: concurrent requests -> one model call.

The first waiting request opens a batch and takes every request already queued. The batch then waits
(at most ``batch_timeout`` seconds, never past ``max_batch_size``) only for as many requests as the
previous batch had: that is the concurrency the server is seeing, since those clients are about to send
again. A lone client (previous batch of one) is answered at once, with no timeout added to its latency;
under load the batches fill up while the model runs. The batch runs on one inference thread
(onnxruntime and torch release the GIL), so the event loop keeps accepting and validating requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class DynamicBatcher:
    """``await batcher.submit(item)`` -> that item's result from ``run_batch(items)``."""

    def __init__(
        self, run_batch: Callable[[list[Any]], list[Any]], max_batch_size: int, batch_timeout: float
    ):
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.batch_timeout = batch_timeout
        self.queue: asyncio.Queue[tuple[Any, asyncio.Future]] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="litforge-infer")
        self.task: asyncio.Task | None = None
        self.expected = 1  # requests the next batch waits for: the size of the previous batch

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.executor.shutdown(wait=True)

    async def submit(self, item: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((item, future))
        return await future

    async def _collect(self) -> list[tuple[Any, asyncio.Future]]:
        batch = [await self.queue.get()]
        self._drain_into(batch)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.batch_timeout
        target = min(self.max_batch_size, self.expected)
        while len(batch) < target:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except asyncio.TimeoutError:
                break
            self._drain_into(batch)
        self.expected = len(batch)
        return batch

    def _drain_into(self, batch: list[tuple[Any, asyncio.Future]]) -> None:
        while len(batch) < self.max_batch_size and not self.queue.empty():
            batch.append(self.queue.get_nowait())

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            items = [item for item, _ in batch]
            try:
                results = await loop.run_in_executor(self.executor, self.run_batch, items)
            except Exception as err:  # answered as 500 for this batch only; the loop keeps serving
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
