"""The JSON-RPC calls of the BitCell contract, independent of any HTTP client.

``build_request`` and ``parse_response`` (raising ``RpcError(code, message, data)`` on an
``error`` member) are the pure pair every caller shares. ``RpcCall`` pairs a method and params
with its result decoder; one builder per method (``block_number()``, ...) returns it, so the
clients and the Locust user send identical requests and read identical results.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bitcell_sim.errors import RpcError
from bitcell_sim.protocol.hexcodec import hexbytes, parse_quantity, quantity
from bitcell_sim.protocol.jsonrpc import JSONRPC_VERSION, Method
from bitcell_sim.protocol.transaction import Transaction

T = TypeVar("T")

#: "Do not check the id" (``None`` is itself a legitimate JSON-RPC id).
ANY_ID: Any = object()


def build_request(
    method: str, params: list[Any] | None = None, request_id: int | str | None = 1
) -> dict[str, Any]:
    """A JSON-RPC 2.0 request object; ``params`` is sent as an array (``[]`` when None)."""
    return {
        "jsonrpc": JSONRPC_VERSION,
        "method": str(method),
        "params": [] if params is None else list(params),
        "id": request_id,
    }


def parse_response(body: bytes | str | Mapping[str, Any], expected_id: Any = ANY_ID) -> Any:
    """The ``result`` of a JSON-RPC response; raises ``RpcError`` for an ``error`` member.

    A malformed body (not JSON, not an object, neither result nor error, wrong id) raises
    ``RpcError`` with code None.
    """
    if isinstance(body, Mapping):
        obj: Any = body
    else:
        try:
            obj = json.loads(body)
        except ValueError as exc:
            raise RpcError(None, f"response is not JSON ({exc}): {preview(body)}") from None
    if not isinstance(obj, dict):
        raise RpcError(None, f"response is not a JSON object: {preview(body)}")
    error = obj.get("error")
    if error is not None:
        if not isinstance(error, dict) or not isinstance(error.get("code"), int):
            raise RpcError(None, f"malformed error member: {error!r}")
        return_code: int = error["code"]
        raise RpcError(return_code, str(error.get("message", "")), error.get("data"))
    if "result" not in obj:
        raise RpcError(None, f"response has neither result nor error: {preview(body)}")
    if expected_id is not ANY_ID and obj.get("id") != expected_id:
        raise RpcError(
            None, f"response id {obj.get('id')!r} does not match request {expected_id!r}"
        )
    return obj["result"]


def preview(body: object, limit: int = 200) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass(frozen=True, slots=True)
class RpcCall(Generic[T]):
    """One method call: ``method``, ``params`` and ``decode`` turning the result into ``T``."""

    method: str
    params: list[Any]
    decode: Callable[[Any], T]

    def request(self, request_id: int | str | None = 1) -> dict[str, Any]:
        return build_request(self.method, self.params, request_id)

    def decode_result(self, raw: Any) -> T:
        """Decode an already-parsed ``result``; a wrong shape raises ``RpcError`` (code None)."""
        try:
            return self.decode(raw)
        except (ValueError, TypeError, KeyError) as exc:
            raise RpcError(None, f"unexpected result of {self.method}: {raw!r} ({exc})") from None

    def result(self, body: bytes | str | Mapping[str, Any]) -> T:
        """Parse a response body to this call and decode its result."""
        return self.decode_result(parse_response(body))


def _quantity(result: Any) -> int:
    return parse_quantity(result)


def _number(result: Any) -> int:
    if isinstance(result, bool) or not isinstance(result, int):
        raise TypeError(f"expected a JSON integer, got {type(result).__name__}")
    return result


def _object(result: Any) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise TypeError(f"expected a JSON object, got {type(result).__name__}")
    return result


def _object_or_none(result: Any) -> dict[str, Any] | None:
    return None if result is None else _object(result)


def _string(result: Any) -> str:
    if not isinstance(result, str):
        raise TypeError(f"expected a string, got {type(result).__name__}")
    return result


def _hex_arg(value: bytes | str) -> str:
    return hexbytes(value) if isinstance(value, bytes | bytearray) else value


def _tag(tag: int | str) -> str:
    return quantity(tag) if isinstance(tag, int) else tag


def block_number() -> RpcCall[int]:
    return RpcCall(Method.BLOCK_NUMBER, [], _quantity)


def get_block_by_number(
    tag: int | str = "latest", full: bool = False
) -> RpcCall[dict[str, Any] | None]:
    return RpcCall(Method.GET_BLOCK_BY_NUMBER, [_tag(tag), full], _object_or_none)


def get_transaction_by_hash(tx_id: bytes | str) -> RpcCall[dict[str, Any] | None]:
    return RpcCall(Method.GET_TRANSACTION_BY_HASH, [_hex_arg(tx_id)], _object_or_none)


def get_balance(address: bytes | str, tag: str = "latest") -> RpcCall[int]:
    return RpcCall(Method.GET_BALANCE, [_hex_arg(address), tag], _quantity)


def get_transaction_count(address: bytes | str, tag: str = "latest") -> RpcCall[int]:
    return RpcCall(Method.GET_TRANSACTION_COUNT, [_hex_arg(address), tag], _quantity)


def send_raw_transaction(raw: bytes | Transaction) -> RpcCall[str]:
    encoded = raw.encode() if isinstance(raw, Transaction) else raw
    return RpcCall(Method.SEND_RAW_TRANSACTION, [hexbytes(encoded)], _string)


def gas_price() -> RpcCall[int]:
    return RpcCall(Method.GAS_PRICE, [], _quantity)


def get_node_info() -> RpcCall[dict[str, Any]]:
    return RpcCall(Method.GET_NODE_INFO, [], _object)


def get_peer_count() -> RpcCall[int]:
    return RpcCall(Method.GET_PEER_COUNT, [], _number)


def get_network_metrics() -> RpcCall[dict[str, Any]]:
    return RpcCall(Method.GET_NETWORK_METRICS, [], _object)


def get_tournament_state() -> RpcCall[dict[str, Any]]:
    return RpcCall(Method.GET_TOURNAMENT_STATE, [], _object)


def get_pending_block_info() -> RpcCall[dict[str, Any]]:
    return RpcCall(Method.GET_PENDING_BLOCK_INFO, [], _object)


def submit_commitment(commitment: bytes, ring_signature: bytes = b"") -> RpcCall[dict[str, Any]]:
    arg = {"commitment": hexbytes(commitment), "ring_signature": hexbytes(ring_signature)}
    return RpcCall(Method.SUBMIT_COMMITMENT, [arg], _object)


def submit_reveal(miner: bytes, nonce: bytes, pattern: str = "Standard") -> RpcCall[dict[str, Any]]:
    arg = {"miner": hexbytes(miner), "nonce": hexbytes(nonce), "glider": {"pattern": pattern}}
    return RpcCall(Method.SUBMIT_REVEAL, [arg], _object)


def get_reputation(miner_id: str) -> RpcCall[dict[str, Any]]:
    return RpcCall(Method.GET_REPUTATION, [miner_id], _object)


def get_miner_stats() -> RpcCall[dict[str, Any]]:
    return RpcCall(Method.GET_MINER_STATS, [], _object)


def get_battle_replay(block_height: int) -> RpcCall[dict[str, Any]]:
    return RpcCall(Method.GET_BATTLE_REPLAY, [block_height], _object)
