"""CURVE key files (zdps/daemon/keys.py): written by keygen, read back, allow-lists."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import zmq
import zmq.auth
from zmq.utils import z85

from zdps.keys import AllowList, KeyFileError, NodeKeys, generate, read_key

pytestmark = pytest.mark.timeout(10)


def test_keygen_writes_a_pair_pyzmq_can_read_with_the_secret_private(tmp_path: Path) -> None:
    public, secret = generate(tmp_path, "node-a")
    assert (public.name, secret.name) == ("node-a.key", "node-a.key_secret")
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    pub_key, sec_key = zmq.auth.load_certificate(secret)
    assert zmq.auth.load_certificate(public) == (pub_key, None)
    assert zmq.curve_public(sec_key) == pub_key  # a matching pair
    assert read_key(secret) == read_key(public).__class__("node-a", pub_key, sec_key)


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    generate(tmp_path, "a")
    before = (tmp_path / "a.key_secret").read_bytes()
    with pytest.raises(KeyFileError, match="exists"):
        generate(tmp_path, "a")
    assert (tmp_path / "a.key_secret").read_bytes() == before


@pytest.mark.parametrize("name", ["", "a/b", 'a"b', "tab\there"])
def test_keygen_refuses_names_that_cannot_be_a_node(tmp_path: Path, name: str) -> None:
    with pytest.raises(KeyFileError):
        generate(tmp_path, name)


def test_the_node_is_the_metadata_name_else_the_file_name(tmp_path: Path) -> None:
    public, _ = generate(tmp_path, "web1.example.com")
    renamed = tmp_path / "web1.example.com.2.key"
    public.rename(renamed)
    assert read_key(renamed).node == "web1.example.com"
    key, _ = zmq.curve_keypair()
    bare = tmp_path / "db7.key"
    bare.write_text(f'curve\n    public-key = "{key.decode()}"\n')
    assert read_key(bare).node == "db7"


@pytest.mark.parametrize(
    "text",
    ["", "curve\n", 'curve\n    public-key = "tooshort"\n', 'public-key = "' + "~" * 40 + '"\n'],
)
def test_a_file_without_a_usable_key_is_refused_with_its_name(tmp_path: Path, text: str) -> None:
    path = tmp_path / "x.key"
    path.write_text(text)
    with pytest.raises(KeyFileError, match=r"x\.key"):
        read_key(path)


def test_an_allow_list_maps_keys_to_nodes_newest_file_first(tmp_path: Path) -> None:
    old, _ = generate(tmp_path / "old", "b")
    new, _ = generate(tmp_path / "new", "b")
    other, _ = generate(tmp_path / "other", "c")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    for i, (path, target) in enumerate([(old, "b.key"), (new, "b.2.key"), (other, "c.key")]):
        (allowed / target).write_bytes(path.read_bytes())
        os.utime(allowed / target, (1000 + i, 1000 + i))
    peers = AllowList(allowed)
    peers.load()
    assert peers.server_key("b") == read_key(new).public
    assert peers.node_of(z85.decode(read_key(old).public)) == "b"
    assert peers.node_of(z85.decode(read_key(other).public)) == "c"
    assert peers.node_of(bytes(32)) is None and peers.server_key("d") is None


def test_a_directory_that_cannot_be_read_keeps_the_list_it_had(tmp_path: Path) -> None:
    generate(tmp_path, "a")
    peers = AllowList(tmp_path)
    peers.load()
    (tmp_path / "broken.key").write_text("not a key")
    with pytest.raises(KeyFileError, match=r"broken\.key"):
        peers.load()
    assert list(peers.by_node) == ["a"]
    with pytest.raises(KeyFileError, match="not a directory"):
        AllowList(tmp_path / "missing").load()


def test_a_node_allows_its_own_key_and_needs_its_secret(tmp_path: Path) -> None:
    public, secret = generate(tmp_path / "own", "a")
    (tmp_path / "peers").mkdir()
    keys = NodeKeys.load(str(secret), str(tmp_path / "peers"))
    assert keys.allowed(z85.decode(read_key(public).public)) == "a"
    assert keys.server_key("a") == read_key(public).public
    with pytest.raises(KeyFileError, match="no secret key"):
        NodeKeys.load(str(public), str(tmp_path / "peers"))
