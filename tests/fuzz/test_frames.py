"""The fuzzer's frames (tests/fuzz/frames.py): reproducible, and safe to send here."""

from __future__ import annotations

import random

import pytest

from tests.fuzz import frames
from zdps.wire import codec

pytestmark = pytest.mark.timeout(60)

ME = frames.Peer("F", 7, "default")
OTHERS = [frames.Peer("A", 1, "default"), frames.Peer("B", 2, "default")]


def made(seed: int, n: int = 300) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        out.append(frames.envelope(rng, ME, OTHERS, 5555))
        out.append(frames.api_frame(rng, 5555))
        out.append(frames.damaged(rng, out[-1]))
    return out


def test_a_seed_makes_the_same_frames() -> None:
    assert made(3) == made(3) and made(3) != made(4)


@pytest.mark.parametrize("seed", range(5))
def test_every_endpoint_in_a_frame_before_damage_is_numeric_loopback(seed: int) -> None:
    for frame in made(seed)[::3] + made(seed)[1::3]:
        assert frames.is_safe(frame), codec.unpack(frame)


@pytest.mark.parametrize(
    ("item", "safe"),
    [
        (["hello", {"advertise": "tcp://127.0.0.1:5555"}], True),
        (["hello", {"advertise": "tcp://localhost:5555"}], False),
        (["hello", {"advertise": "tcp://127.0.0.1x:5555"}], False),
        ({"tcp://10.0.0.1:1": 1}, False),
        (["ipc:///tmp/x"], False),
        ([b"tcp://anything:1"], True),  # bytes are never dialled
    ],
)
def test_is_safe_lets_through_only_numeric_loopback_endpoints(item: object, safe: bool) -> None:
    assert frames.is_safe(frames.pack(item)) is safe
    assert frames.is_safe(frames.pack(frames.sanitized(item, 5555)))


def test_damaged_frames_that_name_another_endpoint_are_caught() -> None:
    rng = random.Random(0)
    frame = frames.pack(["hello", {"advertise": "tcp://127.0.0.1:5555"}])
    damaged = {frames.damaged(rng, frame) for _ in range(3000)}
    unsafe = [d for d in damaged if not frames.is_safe(d)]
    assert unsafe  # a flipped bit can make a host name: the runner withholds those
    assert all("://" in str(codec.unpack(d)) for d in unsafe)
