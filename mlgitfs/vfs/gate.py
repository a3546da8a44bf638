"""The write gate of a writable view: mutations run concurrently; a commit, restore or merge
freezes them (waits for the ones in flight, holds new ones back) and runs alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio


class WriteGate:
    def __init__(self) -> None:
        self._frozen: trio.Event | None = None
        self._inflight = 0
        self._drained: trio.Event | None = None
        self.exclusive = trio.Lock()  # one commit or restore at a time

    @asynccontextmanager
    async def mutating(self) -> AsyncIterator[None]:
        while self._frozen is not None:
            await self._frozen.wait()
        self._inflight += 1
        try:
            yield
        finally:
            self._inflight -= 1
            if self._inflight == 0 and self._drained is not None:
                self._drained.set()

    @asynccontextmanager
    async def frozen(self) -> AsyncIterator[None]:
        """Writes wait while the block runs; entered once the ones in flight are done."""
        async with self.exclusive:
            self._frozen = trio.Event()
            try:
                while self._inflight:
                    self._drained = trio.Event()
                    await self._drained.wait()
                self._drained = None
                yield
            finally:
                event, self._frozen = self._frozen, None
                event.set()
