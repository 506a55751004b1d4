from collections.abc import Iterator

import pytest

from tests.client.fake_node import FakeNode


@pytest.fixture
def node() -> Iterator[FakeNode]:
    """A scripted node on a free loopback port, stopped after the test."""
    fake = FakeNode()
    yield fake
    fake.close()
