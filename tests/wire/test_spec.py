"""docs/PROTOCOL.md against the code: message tables, error codes and the test vectors.

The spec's tables name every node-to-node kind and every request op once, and each
row's body starts with the shape its class states; the error codes are the ones the
code defines; the ring, digest and appendix vectors are what the code computes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zdps.core.overlay import Overlay
from zdps.core.ring import HashRing, node_set_digest
from zdps.core.ring import _point as point
from zdps.wire import codec, errors
from zdps.wire.api import OPS, encode_publish, publish_entry
from zdps.wire.batches import pack_batch
from zdps.wire.codec import PROTOCOL_VERSION, encode_api, encode_envelope
from zdps.wire.data import LEVEL_OWNER, Ack, Consumed, Fanout, FanoutEntry, Forward, ForwardEntry
from zdps.wire.delivery import message_header
from zdps.wire.messages import NODE_MESSAGES

pytestmark = pytest.mark.timeout(30)

SPEC = (Path(__file__).parents[2] / "docs" / "PROTOCOL.md").read_text()
INCARNATION = 1_700_000_000_000_000_000


def section(title: str) -> str:
    """The text of the section whose heading starts with ``title``, up to the next one."""
    start = SPEC.index(f"\n{title}")
    level = SPEC[start + 1 :].split(" ", 1)[0]
    after = SPEC.find(f"\n{level} ", start + 1)
    return SPEC[start : after if after != -1 else len(SPEC)]


def rows(text: str) -> dict[str, str]:
    """``{name: second cell}`` of every table row whose first cell is a backticked name."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"\|\s*`([a-z_]+)`\s*\|([^|]*)\|", line)
        if match:
            assert match.group(1) not in found, f"{match.group(1)} has two rows"
            found[match.group(1)] = match.group(2).strip()
    return found


def test_every_message_kind_has_one_row_starting_with_its_shape() -> None:
    table = rows(section("### 3.3"))
    assert set(table) == {cls.KIND for cls in NODE_MESSAGES}
    for cls in NODE_MESSAGES:
        assert table[cls.KIND].startswith(f"`{cls.SHAPE}`"), (cls.KIND, table[cls.KIND])


MINUS, DASH = "\u2212", "\u2013"  # the spec's minus sign (2**64 - k) and range dash (a to b)


def bound(value: int) -> str:
    """A bound as the spec writes it: 4096, "10 000 000", "2⁶⁴ {MINUS} 4097"."""
    if value > 2**63:
        return f"2⁶⁴ {MINUS} {2**64 - value}"
    return f"{value:,}".replace(",", " ") if value >= 10_000 else str(value)


def test_every_range_a_message_class_checks_is_written_in_its_row() -> None:
    table = rows(section("### 3.3"))
    checked = 0
    for cls in NODE_MESSAGES:
        for field, low, high in getattr(cls, "RANGES", ()):
            phrase = f"`{field}` {bound(low)}{DASH}{bound(high - 1)}"
            assert phrase in table[cls.KIND], (cls.KIND, phrase, table[cls.KIND])
            checked += 1
    assert checked >= 8  # fwd (n, hops), close, fanout (seq, n), store (seq, n), ack (seq, n)


def test_every_request_op_has_one_row_starting_with_its_args() -> None:
    table = rows(section("### 8.3"))
    assert set(table) == set(OPS)
    for name, op in OPS.items():
        assert table[name].startswith(f"`{op.SHAPE}`"), (name, table[name])


def test_the_error_code_table_is_the_codes_the_code_defines() -> None:
    defined = {v for k, v in vars(errors).items() if k.startswith("E_")}
    assert set(rows(section("### 8.4"))) == defined - set(errors.COUNTED_ONLY)
    text = section("### 8.4")
    assert all(f"`{code}`" in text for code in errors.COUNTED_ONLY)


def test_ring_vectors() -> None:
    ring = HashRing(["n1", "n2", "n3"])
    assert point(b"news") == 0xAD662ED3DC9273D1
    assert [ring.owner(t) for t in ("news", "news.sport", "a")] == ["n1", "n3", "n1"]
    assert node_set_digest(["n1", "n2", "n3"]) == ring.digest() == "072b3391b2ebd4c0"
    text = section("## 6.")
    assert "`0xad662ed3dc9273d1`" in text and "`072b3391b2ebd4c0`" in text


def test_the_scope_digests_of_no_groups_are_as_written() -> None:
    """The sorted form of the empty map is the digest of no input, the sum form 0."""
    import hashlib

    empty = Overlay("a")
    assert empty.local_digest(sorted_form=True) == hashlib.blake2b(digest_size=8).hexdigest()
    assert empty.local_digest() == "s" + "0" * 16


def test_the_sum_digest_is_the_sum_of_each_group_s_hash_as_written() -> None:
    import hashlib

    def entry(group: bytes, count: int) -> int:
        data = len(group).to_bytes(2, "big") + group + count.to_bytes(8, "big")
        return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")

    overlay = Overlay("a")
    overlay.join(b"news\x00", 2)
    overlay.join(b"sport.")
    total = (entry(b"news\x00", 2) + entry(b"sport.", 1)) % 2**64
    assert overlay.local_digest() == f"s{total:016x}"


def hex_of(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


def appendix_hex() -> str:
    """Every hex byte written in the appendix, in order, as one spaced string."""
    text = section("## Appendix").replace("`", " ")
    pairs = re.findall(r"(?m)(?:^|(?<= ))([0-9a-f]{2})(?= |$)", text)
    return " ".join(pairs)


def test_the_spec_names_the_version_the_code_speaks() -> None:
    assert SPEC.startswith(f"# zdps wire protocol, version {PROTOCOL_VERSION}\n")
    assert f"version, `{PROTOCOL_VERSION}` today" in section("## 1.")


def test_appendix_bytes_are_what_the_code_encodes() -> None:
    hexes = appendix_hex()
    hi, abc = pack_batch([b"hi"]), pack_batch([b"a", b"b", b"c"])
    publish = encode_publish([publish_entry(1, "news", [b"hi"], LEVEL_OWNER)])
    assert hex_of(publish) == ("93 02 a3 70 75 62 91 94 01 a4 6e 65 77 73 01 c4 05 91 c4 02 68 69")
    # As the router sends it: ``lazy`` (a ForwardEntry's last field) only when true.
    forward = Forward([ForwardEntry("news", 1, hi, 1, 1, LEVEL_OWNER)[:-1]]).encode()
    envelope = encode_envelope("default", "n2", INCARNATION, [forward])
    consumed = encode_envelope("default", "n2", INCARNATION, [Consumed(1).encode()])
    header = message_header(1, 1_700_000_000_123)
    ack = encode_api("ack", [[1, 1, 1, 1, 1]])
    batch = encode_publish([publish_entry(2, "news", [b"a", b"b", b"c"], LEVEL_OWNER)])
    batch_ack = encode_api("ack", [[2, 2, 1, 1, 3]])
    for encoded in (hi, publish, envelope, consumed, header, ack, batch, batch_ack, abc):
        assert hex_of(encoded) in hexes, hex_of(encoded)


def test_appendix_messages_decode_to_the_arrays_it_shows() -> None:
    text = section("## Appendix").replace("\n ", " ")
    epoch = 1_700_000_000_123
    hi, abc = pack_batch([b"hi"]), pack_batch([b"a", b"b", b"c"])
    for copy, ack in (((1, 1, hi), [1, 1, 1, 1, 1]), ((2, 3, abc), [2, 2, 1, 1, 3])):
        seq, n, batch = copy
        answer = codec.unpack(
            encode_envelope(
                "default",
                "n1",
                INCARNATION,
                [
                    Fanout([FanoutEntry("news", seq, epoch, n, batch)]).encode(),
                    Ack([ack]).encode(),
                ],
            )
        )
        assert answer[4] == [["fanout", [["news", seq, epoch, n, batch]]], ["ack", [ack]]]
        shown = f'[["fanout", [["news", {seq}, {epoch}, {n}, b"{_escaped(batch)}"]]],'
        assert " ".join(shown.split()) in " ".join(text.split()), shown
        assert f'["ack", [[{", ".join(map(str, ack))}]]]' in text


def _escaped(data: bytes) -> str:
    """``data`` as the appendix writes a bytes literal."""
    return repr(data)[2:-1]
