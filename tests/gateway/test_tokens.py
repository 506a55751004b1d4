"""Token authentication (zdps/gateway/tokens.py): the file, the two ways a token comes,
and what a socket with a token may join and publish (zdps/gateway/phoenix.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from zdps.gateway.phoenix import Join, PhoenixSocket
from zdps.gateway.tokens import BEARER, Tokens, token_of

pytestmark = pytest.mark.timeout(30)

FILE = """
[alice]
token = "alice-0123456789abcdef"
publish = ["chat."]
subscribe = ["chat.", "public."]

[bob]
token = "bob-0123456789abcdefgh"
subscribe = ["public."]
"""


def tokens(tmp_path: Path, text: str = FILE) -> Tokens:
    path = tmp_path / "tokens.toml"
    path.write_text(text)
    return Tokens.read(path)


def test_each_token_names_its_client(tmp_path: Path) -> None:
    known = tokens(tmp_path)
    assert known.who("alice-0123456789abcdef") == "alice"
    assert known.who("bob-0123456789abcdefgh") == "bob"
    assert known.who("alice-0123456789abcdeF") is None and known.who(None) is None


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('[a]\ntoken = "short"\n', "needs a token of 16+"),
        ('[a]\npublish = ["x"]\n', "needs a token"),
        ('[a]\ntoken = "0123456789abcdef"\n[b]\ntoken = "0123456789abcdef"\n', "the token of [a]"),
        ('[a]\ntoken = "0123456789abcdef"\npublsh = ["x"]\n', "unknown keys ['publsh']"),
        ("a = 1\n", "must be a table"),
        ("[a\n", "tokens.toml"),
    ],
)
def test_a_bad_tokens_file_says_what_is_wrong(tmp_path: Path, text: str, said: str) -> None:
    with pytest.raises(ValueError, match=said.replace("[", r"\[").replace("]", r"\]")):
        tokens(tmp_path, text)


def test_a_token_comes_as_the_js_clients_subprotocol_or_as_a_query_parameter() -> None:
    token = "alice-0123456789abcdef?"  # base64 of it has "/" and padding, as btoa makes it
    as_js = BEARER + base64.b64encode(token.encode()).decode().rstrip("=")
    assert token_of("/socket/websocket?vsn=2.0.0", ["phoenix", as_js]) == token
    assert token_of("/socket/websocket?token=abc&vsn=2.0.0", []) == "abc"
    assert token_of("/socket/websocket?vsn=2.0.0", ["phoenix"]) is None
    assert token_of("/s", [BEARER + "!!!"]) is None


def test_a_socket_joins_and_publishes_only_what_its_token_allows(tmp_path: Path) -> None:
    sock = PhoenixSocket(permissions=tokens(tmp_path).permissions, user="bob")
    assert sock.on_text('["1","1","public.news","phx_join",{}]') == [Join("1", "1", "public.news")]
    (refused,) = sock.on_text('["2","2","chat.room","phx_join",{}]')
    assert json.loads(refused)[4] == {"status": "error", "response": {"reason": "unauthorized"}}
    (forbidden,) = sock.on_text('["1","3","public.news","publish",["e",{}]]')
    assert json.loads(forbidden)[4]["response"] == {"reason": "forbidden"}
