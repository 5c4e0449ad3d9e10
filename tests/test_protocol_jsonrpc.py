"""The JSON-RPC envelope and the per-method parameter rules, message by message."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bitcell_sim.errors import RpcError
from bitcell_sim.protocol import jsonrpc as j
from bitcell_sim.protocol.errors import ProtocolError
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.params import (
    GLIDER_PATTERNS,
    BlockQuery,
    address_param,
    battle_replay_param,
    block_by_number_params,
    commitment_params,
    miner_id_param,
    raw_transaction_param,
    reveal_params,
    tx_hash_param,
)

KEY = KeyPair.from_seed("test-seed").public_key.hex()


def test_seventeen_methods() -> None:
    assert len(j.Method) == 17
    assert j.Method.SEND_RAW_TRANSACTION == "eth_sendRawTransaction"
    assert not set(j.UNIMPLEMENTED_METHODS) & {m.value for m in j.Method}


def test_codes() -> None:
    assert (j.PARSE_ERROR, j.INVALID_REQUEST, j.METHOD_NOT_FOUND) == (-32700, -32600, -32601)
    assert (j.INVALID_PARAMS, j.INTERNAL_ERROR, j.SERVER_ERROR) == (-32602, -32603, -32000)


def test_response_shapes_have_four_keys() -> None:
    assert j.success_response(1, "0x0") == {
        "jsonrpc": "2.0",
        "result": "0x0",
        "error": None,
        "id": 1,
    }
    assert j.error_response("a", -32601, "Method not found") == {
        "jsonrpc": "2.0",
        "result": None,
        "error": {"code": -32601, "message": "Method not found", "data": None},
        "id": "a",
    }
    err = RpcError(-32602, "Invalid params")
    assert j.error_response_from(None, err)["error"]["code"] == -32602
    with pytest.raises(ProtocolError, match="without a JSON-RPC code cannot be answered: boom"):
        j.error_response_from(1, RpcError(None, "boom"))


def test_version_and_method_checks() -> None:
    j.check_version({"jsonrpc": "2.0"})
    with pytest.raises(RpcError, match="Invalid Request") as info:
        j.check_version({"jsonrpc": "1.0"})
    assert info.value.code == -32600
    assert j.check_method("eth_gasPrice") is j.Method.GAS_PRICE
    with pytest.raises(RpcError, match="Method not found") as info:
        j.check_method("net_peerCount")
    assert info.value.code == -32601


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([{"jsonrpc": "2.0", "method": "x"}], "expected a JSON object, got list"),
        ({"method": "x"}, "missing field `jsonrpc`"),
        ({"jsonrpc": "2.0"}, "missing field `method`"),
        ({"jsonrpc": 2, "method": "x"}, "invalid type for `jsonrpc`"),
        ({"jsonrpc": "2.0", "method": 5}, "invalid type for `method`"),
    ],
)
def test_request_shape_errors(body: Any, reason: str) -> None:
    error = j.request_shape_error(body)
    assert error is not None
    assert error.startswith(j.BODY_WRONG_SHAPE_PREFIX)
    assert reason in error


def test_request_shape_ok() -> None:
    assert j.request_shape_error({"jsonrpc": "1.0", "method": "x"}) is None


def _rejects(fn: Any, params: Any, message: str) -> None:
    with pytest.raises(RpcError, match=re.escape(message)) as info:
        fn(params)
    assert info.value.code == -32602
    assert info.value.message == message


COMMON = [
    (None, "Invalid params"),
    ({"a": 1}, "Params must be an array"),
    ("x", "Params must be an array"),
]


@pytest.mark.parametrize(
    ("fn", "params", "message"),
    [(fn, p, m) for fn in (block_by_number_params, tx_hash_param, address_param) for p, m in COMMON]
    + [
        (block_by_number_params, [], "Missing block number"),
        (block_by_number_params, [5], "Block number must be a string"),
        (block_by_number_params, ["0xzz"], "Invalid block number format"),
        (block_by_number_params, ["0x"], "Invalid block number format"),
        (block_by_number_params, ["0x1" + "0" * 16], "Invalid block number format"),
        (block_by_number_params, ["Latest"], "Invalid block number format"),
        (tx_hash_param, [], "Missing transaction hash"),
        (tx_hash_param, [1], "Transaction hash must be a string"),
        (tx_hash_param, ["0xabc"], "Invalid hex encoding"),
        (tx_hash_param, ["0x" + "00" * 31], "Transaction hash must be 32 bytes"),
        (address_param, [], "Missing address"),
        (address_param, [None, "latest"], "Address must be a string"),
        (address_param, ["0xgg"], "Invalid address format"),
        (address_param, ["0x" + "00" * 20], "Address must be 33 bytes (compressed public key)"),
        (raw_transaction_param, None, "Invalid params"),
        (raw_transaction_param, [], "Missing transaction data"),
        (raw_transaction_param, [{"raw": 1}], "Transaction data must be a string"),
        (raw_transaction_param, ["0x0"], "Invalid hex encoding"),
        (miner_id_param, [], "Missing miner ID"),
        (miner_id_param, [3], "Miner ID must be a string"),
        (battle_replay_param, [], "Missing arguments (block_height)"),
        (battle_replay_param, ["0x1"], "Invalid block height"),
        (battle_replay_param, [-1], "Invalid block height"),
        (battle_replay_param, [1.5], "Invalid block height"),
        (battle_replay_param, [True], "Invalid block height"),
    ],
)
def test_param_errors(fn: Any, params: Any, message: str) -> None:
    _rejects(fn, params, message)


def test_block_tags() -> None:
    assert block_by_number_params(["latest"]) == BlockQuery("latest", None, False)
    assert block_by_number_params(["pending", True]) == BlockQuery("pending", None, True)
    assert block_by_number_params(["earliest", "true"]) == BlockQuery(None, 0, False)
    assert block_by_number_params(["0x1A", 1]) == BlockQuery(None, 26, False)
    assert block_by_number_params(["1a", True]) == BlockQuery(None, 26, True)
    assert block_by_number_params(["+ff"]).height == 255  # Rust from_str_radix takes a '+'


def test_good_values() -> None:
    assert tx_hash_param(["AB" * 32]) == b"\xab" * 32
    assert address_param(["0x" + KEY, "latest"]).hex() == KEY
    assert raw_transaction_param(["0x"]) == b""
    assert miner_id_param(["m1"]) == "m1"
    assert battle_replay_param([7]) == 7


def _commit(**fields: Any) -> list[Any]:
    base: dict[str, Any] = {"commitment": "0x" + "11" * 32, "ring_signature": "0xabcd"}
    base.update(fields)
    return [{k: v for k, v in base.items() if v is not ...}]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (None, "Invalid params"),
        ({}, "Params must be an array"),
        ([], "Missing arguments"),
        (["x"], "Argument must be an object"),
        (_commit(commitment=...), "Missing commitment"),
        (_commit(commitment=5), "Missing commitment"),
        (_commit(ring_signature=...), "Missing ring_signature"),
        (_commit(commitment="0x1"), "Invalid hex for commitment"),
        (_commit(ring_signature="zz"), "Invalid hex for signature"),
        (_commit(commitment="0x" + "11" * 31), "Commitment must be 32 bytes"),
    ],
)
def test_commitment_errors(params: Any, message: str) -> None:
    _rejects(commitment_params, params, message)


def test_commitment_ok_strips_repeated_prefix() -> None:
    args = commitment_params(_commit(commitment="0x0x" + "11" * 32))
    assert args.commitment == b"\x11" * 32
    assert args.ring_signature == b"\xab\xcd"


def _reveal(**fields: Any) -> list[Any]:
    base: dict[str, Any] = {"miner": "0x" + KEY, "nonce": "0x01", "glider": {"pattern": "Standard"}}
    base.update(fields)
    return [{k: v for k, v in base.items() if v is not ...}]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([], "Missing arguments"),
        ([[]], "Argument must be an object"),
        (_reveal(miner=...), "Missing miner"),
        (_reveal(nonce=...), "Missing nonce"),
        (_reveal(glider=...), "Missing glider"),
        (_reveal(glider="Standard"), "Missing glider"),
        (_reveal(miner="0xq"), "Invalid hex for miner"),
        (_reveal(miner="0x" + KEY[:-2]), "Miner public key must be 33 bytes"),
        (_reveal(miner="0x02" + "00" * 32), "Invalid miner public key"),
        (_reveal(nonce="0x1"), "Invalid hex for nonce"),
        (_reveal(glider={}), "Missing glider pattern"),
        (_reveal(glider={"pattern": "Glider"}), "Unknown glider pattern"),
    ],
)
def test_reveal_errors(params: Any, message: str) -> None:
    _rejects(reveal_params, params, message)


@pytest.mark.parametrize("pattern", GLIDER_PATTERNS)
def test_reveal_ok(pattern: str) -> None:
    args = reveal_params(_reveal(glider={"pattern": pattern}, nonce=""))
    assert (args.miner.hex(), args.nonce, args.pattern) == (KEY, b"", pattern)
