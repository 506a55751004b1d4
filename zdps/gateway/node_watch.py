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


@dataclass(slots=True)
class NodeWatch:
    client: AsyncClient
    node: str
    answers: bool | None = None  # None: not asked yet
    why: str = ""  # why not, when it does not

    async def run(self) -> None:
        while True:
            self.saw(await self._ask())
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
        """The outcome of one question: logged when it differs from the last."""
        answers = why is None
        self.why = why or ""
        if answers == self.answers:
            return
        self.answers = answers
        if answers:
            log.info("the zdps node at %s answers", self.node)
        else:
            log.warning(
                "the zdps node at %s does not answer (%s): joins and publishes get "
                "'unreachable' until it does", self.node, why,
            )  # fmt: skip
