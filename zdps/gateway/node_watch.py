"""Whether the gateway's zdps node answers: asked at start and every CHECK_EVERY
seconds, logged when that changes, shown in ``/status``. While it does not answer, the
gateway refuses joins and publishes at once (``unreachable``) instead of letting each
wait out its timeout: a gateway pointed at the wrong endpoint says so in its first
second, and its clients hear why."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from zdps.client.aio import AsyncClient
from zdps.client.protocol import ZdpsError

log = logging.getLogger("zdps.gateway")

CHECK_EVERY = 2.0  # seconds between two questions to the node
CHECK_TIMEOUT = 1.0  # seconds an answer may take; the node answers within 0.1 s under load
MISSES = 2  # unanswered questions in a row that make a node that answered not answer


@dataclass(slots=True)
class NodeWatch:
    client: AsyncClient
    node: str
    answers: bool | None = None  # None: not asked yet
    why: str = ""  # why not, when it does not
    misses: int = 0  # unanswered questions in a row

    async def run(self) -> None:
        while True:
            try:
                self.saw(await self._ask())
            except Exception:  # a bug here must not freeze the verdict: say it, go on
                log.exception("asking the zdps node at %s failed", self.node)
            await asyncio.sleep(CHECK_EVERY)

    async def _ask(self) -> str | None:
        """None if the node answered; else why not."""
        try:
            if self.answers is None:  # nothing listening there shows at once
                await self.client.check_node()
            await self.client.request("info", _timeout=CHECK_TIMEOUT)
        except ZdpsError as exc:
            return str(exc)
        return None

    def saw(self, why: str | None) -> None:
        """The outcome of one question: logged when the verdict changes. The first
        question decides at once; after that a node that answered is taken not to
        answer after MISSES questions in a row (a GC pause or a backlog is not down)."""
        self.misses = 0 if why is None else self.misses + 1
        answers = why is None
        self.why = why or ""
        if answers == self.answers or (self.answers and self.misses < MISSES):
            return
        self.answers = answers
        if answers:
            log.info("the zdps node at %s answers", self.node)
        else:
            log.warning(
                "the zdps node at %s does not answer (%s): joins and publishes get "
                "'unreachable' until it does", self.node, why,
            )  # fmt: skip
