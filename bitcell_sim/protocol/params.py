"""Parameter rules of each BitCell JSON-RPC method, with the node's exact -32602 messages.

Each ``*_param`` function takes the request's ``params`` value (None when absent or null) and
returns the parsed argument or raises ``RpcError(-32602, message)``, checking in the node's
order: params present, an array, the argument present, its JSON type, its hex, its length.
Used by the devnet node; clients can use them to pre-check their own calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bitcell_sim.protocol import jsonrpc as j
from bitcell_sim.protocol.consensus import GLIDER_PATTERNS
from bitcell_sim.protocol.keys import is_valid_public_key

BlockTag = Literal["latest", "earliest", "pending"]

_HEX = frozenset("0123456789abcdefABCDEF")


def _hex(text: str) -> bytes | None:
    """Rust ``hex::decode``: even length, hex digits only, either case; None on failure."""
    if len(text) % 2 or not _HEX.issuperset(text):
        return None
    return bytes.fromhex(text)


def _strip_one(text: str) -> str:
    # ``strip_prefix("0x")``: at most one prefix.
    return text[2:] if text.startswith("0x") else text


def _strip_all(text: str) -> str:
    # ``trim_start_matches("0x")`` in the tournament methods: every leading "0x".
    while text.startswith("0x"):
        text = text[2:]
    return text


def require_array(params: Any) -> list[Any]:
    """Params must be present (not null) and a JSON array."""
    if params is None:
        raise j.invalid_params(j.MSG_INVALID_PARAMS)
    if not isinstance(params, list):
        raise j.invalid_params(j.MSG_PARAMS_NOT_ARRAY)
    return params


def _first_string(params: Any, missing: str, not_string: str) -> str:
    args = require_array(params)
    if not args:
        raise j.invalid_params(missing)
    if not isinstance(args[0], str):
        raise j.invalid_params(not_string)
    return args[0]


def _u64_from_hex(text: str) -> int | None:
    """Rust ``u64::from_str_radix(text, 16)``: one optional '+', then hex digits, no overflow."""
    digits = text[1:] if text.startswith("+") else text
    if not digits or not _HEX.issuperset(digits):
        return None
    value = int(digits, 16)
    return value if value < 1 << 64 else None


@dataclass(frozen=True, slots=True)
class BlockQuery:
    """``eth_getBlockByNumber`` arguments: a tag or a height, and whether to inline txs."""

    tag: BlockTag | None
    height: int | None
    full_transactions: bool


def block_by_number_params(params: Any) -> BlockQuery:
    """``[tag, fullTx?]``: "latest", "earliest" (0), "pending" (= latest) or hex height."""
    tag = _first_string(params, j.MSG_MISSING_BLOCK_NUMBER, j.MSG_BLOCK_NUMBER_NOT_STRING)
    args: list[Any] = params
    # Anything but a JSON bool true counts as false, like ``as_bool().unwrap_or(false)``.
    full = len(args) > 1 and args[1] is True
    if tag == "earliest":
        return BlockQuery(None, 0, full)
    if tag == "latest":
        return BlockQuery("latest", None, full)
    if tag == "pending":
        return BlockQuery("pending", None, full)
    height = _u64_from_hex(_strip_one(tag))
    if height is None:
        raise j.invalid_params(j.MSG_INVALID_BLOCK_NUMBER)
    return BlockQuery(None, height, full)


def tx_hash_param(params: Any) -> bytes:
    """``eth_getTransactionByHash``: ``["0x<32-byte hash>"]``."""
    text = _first_string(params, j.MSG_MISSING_TX_HASH, j.MSG_TX_HASH_NOT_STRING)
    raw = _hex(_strip_one(text))
    if raw is None:
        raise j.invalid_params(j.MSG_INVALID_HEX)
    if len(raw) != 32:
        raise j.invalid_params(j.MSG_TX_HASH_LENGTH)
    return raw


def address_param(params: Any) -> bytes:
    """``eth_getBalance`` / ``eth_getTransactionCount``: ``["0x<33-byte key>", tag]``."""
    text = _first_string(params, j.MSG_MISSING_ADDRESS, j.MSG_ADDRESS_NOT_STRING)
    raw = _hex(_strip_one(text))
    if raw is None:
        raise j.invalid_params(j.MSG_INVALID_ADDRESS)
    if len(raw) != 33:
        raise j.invalid_params(j.MSG_ADDRESS_LENGTH)
    return raw


def raw_transaction_param(params: Any) -> bytes:
    """``eth_sendRawTransaction``: ``["0x<bincode tx>"]`` → the raw bytes (not yet decoded)."""
    text = _first_string(params, j.MSG_MISSING_TX_DATA, j.MSG_TX_DATA_NOT_STRING)
    raw = _hex(_strip_one(text))
    if raw is None:
        raise j.invalid_params(j.MSG_INVALID_HEX)
    return raw


def miner_id_param(params: Any) -> str:
    """``bitcell_getReputation``: ``["<miner id>"]``."""
    return _first_string(params, j.MSG_MISSING_MINER_ID, j.MSG_MINER_ID_NOT_STRING)


def battle_replay_param(params: Any) -> int:
    """``bitcell_getBattleReplay``: ``[<JSON integer height>]``; a hex string is rejected."""
    args = require_array(params)
    if not args:
        raise j.invalid_params(j.MSG_MISSING_BLOCK_HEIGHT)
    height = args[0]
    # serde_json ``as_u64``: a non-negative integer (bools and floats are not).
    if isinstance(height, bool) or not isinstance(height, int) or not 0 <= height < 1 << 64:
        raise j.invalid_params(j.MSG_INVALID_BLOCK_HEIGHT)
    return height


def _object_arg(params: Any) -> dict[str, Any]:
    args = require_array(params)
    if not args:
        raise j.invalid_params(j.MSG_MISSING_ARGUMENTS)
    if not isinstance(args[0], dict):
        raise j.invalid_params(j.MSG_ARGUMENT_NOT_OBJECT)
    return args[0]


def _str_field(obj: dict[str, Any], key: str, missing: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise j.invalid_params(missing)
    return value


@dataclass(frozen=True, slots=True)
class CommitmentArgs:
    """``bitcell_submitCommitment`` argument: a 32-byte commitment and opaque ring signature."""

    commitment: bytes
    ring_signature: bytes


def commitment_params(params: Any) -> CommitmentArgs:
    """``[{commitment: "0x<32 bytes>", ring_signature: "0x<hex>"}]``."""
    obj = _object_arg(params)
    commitment_text = _str_field(obj, "commitment", j.MSG_MISSING_COMMITMENT)
    signature_text = _str_field(obj, "ring_signature", j.MSG_MISSING_RING_SIGNATURE)
    commitment = _hex(_strip_all(commitment_text))
    if commitment is None:
        raise j.invalid_params(j.MSG_INVALID_COMMITMENT_HEX)
    ring_signature = _hex(_strip_all(signature_text))
    if ring_signature is None:
        raise j.invalid_params(j.MSG_INVALID_SIGNATURE_HEX)
    if len(commitment) != 32:
        raise j.invalid_params(j.MSG_COMMITMENT_LENGTH)
    return CommitmentArgs(commitment, ring_signature)


@dataclass(frozen=True, slots=True)
class RevealArgs:
    """``bitcell_submitReveal`` argument: miner key, nonce bytes and glider pattern name."""

    miner: bytes
    nonce: bytes
    pattern: str


def reveal_params(params: Any) -> RevealArgs:
    """``[{miner: "0x<33-byte key>", nonce: "0x<hex>", glider: {pattern: "Standard"}}]``."""
    obj = _object_arg(params)
    miner_text = _str_field(obj, "miner", j.MSG_MISSING_MINER)
    nonce_text = _str_field(obj, "nonce", j.MSG_MISSING_NONCE)
    glider = obj.get("glider")
    if not isinstance(glider, dict):
        raise j.invalid_params(j.MSG_MISSING_GLIDER)
    miner = _hex(_strip_all(miner_text))
    if miner is None:
        raise j.invalid_params(j.MSG_INVALID_MINER_HEX)
    if len(miner) != 33:
        raise j.invalid_params(j.MSG_MINER_KEY_LENGTH)
    if not is_valid_public_key(miner):
        raise j.invalid_params(j.MSG_INVALID_MINER_KEY)
    nonce = _hex(_strip_all(nonce_text))
    if nonce is None:
        raise j.invalid_params(j.MSG_INVALID_NONCE_HEX)
    pattern = glider.get("pattern")
    if not isinstance(pattern, str):
        raise j.invalid_params(j.MSG_MISSING_GLIDER_PATTERN)
    if pattern not in GLIDER_PATTERNS:
        raise j.invalid_params(j.MSG_UNKNOWN_GLIDER_PATTERN)
    return RevealArgs(miner, nonce, pattern)
