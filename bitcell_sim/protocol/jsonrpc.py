"""The JSON-RPC 2.0 envelope of a BitCell node: methods, error codes, messages, response shapes.

``Method`` names the 17 dispatched methods; the ``*_ERROR`` codes and the message constants are
the node's exact text. ``success_response``/``error_response`` build the four-key answer the node
sends (``jsonrpc``, ``result``, ``error``, ``id``, with nulls); ``request_shape_error`` says why a
body would get axum's HTTP 422 instead of a JSON-RPC answer. HTTP-level texts are here too.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from bitcell_sim.errors import RpcError
from bitcell_sim.protocol.errors import ProtocolError

JSONRPC_VERSION = "2.0"


class Method(StrEnum):
    """The methods a BitCell node dispatches (``handle_json_rpc``)."""

    BLOCK_NUMBER = "eth_blockNumber"
    GET_BLOCK_BY_NUMBER = "eth_getBlockByNumber"
    GET_TRANSACTION_BY_HASH = "eth_getTransactionByHash"
    GET_BALANCE = "eth_getBalance"
    SEND_RAW_TRANSACTION = "eth_sendRawTransaction"
    GET_TRANSACTION_COUNT = "eth_getTransactionCount"
    GAS_PRICE = "eth_gasPrice"
    GET_NODE_INFO = "bitcell_getNodeInfo"
    GET_PEER_COUNT = "bitcell_getPeerCount"
    GET_NETWORK_METRICS = "bitcell_getNetworkMetrics"
    GET_TOURNAMENT_STATE = "bitcell_getTournamentState"
    SUBMIT_COMMITMENT = "bitcell_submitCommitment"
    SUBMIT_REVEAL = "bitcell_submitReveal"
    GET_BATTLE_REPLAY = "bitcell_getBattleReplay"
    GET_REPUTATION = "bitcell_getReputation"
    GET_MINER_STATS = "bitcell_getMinerStats"
    GET_PENDING_BLOCK_INFO = "bitcell_getPendingBlockInfo"


#: Documented by BitCell but not dispatched: a node answers -32601 "Method not found".
UNIMPLEMENTED_METHODS = (
    "eth_getTransactionReceipt",
    "net_peerCount",
    "bitcell_getTournamentTranscript",
    "bitcell_getBlock",
    "bitcell_getTransaction",
)

# Error codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
LIMIT_EXCEEDED = -32005

# Envelope and common parameter messages.
MSG_PARSE_ERROR = "Parse error"
MSG_INVALID_REQUEST = "Invalid Request"
MSG_METHOD_NOT_FOUND = "Method not found"
MSG_INVALID_PARAMS = "Invalid params"
MSG_PARAMS_NOT_ARRAY = "Params must be an array"
MSG_STATE_LOCK = "Failed to acquire state lock"

# Per-method -32602 messages (FACTS §1.2).
MSG_MISSING_BLOCK_NUMBER = "Missing block number"
MSG_BLOCK_NUMBER_NOT_STRING = "Block number must be a string"
MSG_INVALID_BLOCK_NUMBER = "Invalid block number format"
MSG_MISSING_TX_HASH = "Missing transaction hash"
MSG_TX_HASH_NOT_STRING = "Transaction hash must be a string"
MSG_INVALID_HEX = "Invalid hex encoding"
MSG_TX_HASH_LENGTH = "Transaction hash must be 32 bytes"
MSG_MISSING_ADDRESS = "Missing address"
MSG_ADDRESS_NOT_STRING = "Address must be a string"
MSG_INVALID_ADDRESS = "Invalid address format"
MSG_ADDRESS_LENGTH = "Address must be 33 bytes (compressed public key)"
MSG_MISSING_TX_DATA = "Missing transaction data"
MSG_TX_DATA_NOT_STRING = "Transaction data must be a string"
MSG_MISSING_ARGUMENTS = "Missing arguments"
MSG_ARGUMENT_NOT_OBJECT = "Argument must be an object"
MSG_MISSING_COMMITMENT = "Missing commitment"
MSG_MISSING_RING_SIGNATURE = "Missing ring_signature"
MSG_INVALID_COMMITMENT_HEX = "Invalid hex for commitment"
MSG_INVALID_SIGNATURE_HEX = "Invalid hex for signature"
MSG_COMMITMENT_LENGTH = "Commitment must be 32 bytes"
MSG_MISSING_MINER = "Missing miner"
MSG_MISSING_NONCE = "Missing nonce"
MSG_MISSING_GLIDER = "Missing glider"
MSG_INVALID_MINER_HEX = "Invalid hex for miner"
MSG_MINER_KEY_LENGTH = "Miner public key must be 33 bytes"
MSG_INVALID_MINER_KEY = "Invalid miner public key"
MSG_INVALID_NONCE_HEX = "Invalid hex for nonce"
MSG_MISSING_GLIDER_PATTERN = "Missing glider pattern"
MSG_UNKNOWN_GLIDER_PATTERN = "Unknown glider pattern"
MSG_MISSING_BLOCK_HEIGHT = "Missing arguments (block_height)"
MSG_INVALID_BLOCK_HEIGHT = "Invalid block height"
MSG_MISSING_MINER_ID = "Missing miner ID"
MSG_MINER_ID_NOT_STRING = "Miner ID must be a string"

# -32000 tournament messages.
MSG_NO_TOURNAMENT_SUPPORT = "Node does not support tournament operations"
MSG_NOT_IN_COMMIT_PHASE = (
    "Failed to submit commitment: Node error: Tournament error: Tournament error: "
    "Not in commit phase"
)
MSG_NOT_IN_REVEAL_PHASE = (
    "Failed to submit reveal: Node error: Tournament error: Tournament error: Not in reveal phase"
)
MSG_NO_ACTIVE_TOURNAMENT = "Failed to submit commitment: Node error: No active tournament"

# HTTP-level answers of axum 0.7 (plain-text bodies, not JSON-RPC).
HTTP_UNSUPPORTED_MEDIA_TYPE = 415
HTTP_BAD_REQUEST = 400
HTTP_UNPROCESSABLE = 422
HTTP_PAYLOAD_TOO_LARGE = 413
MAX_BODY_BYTES = 2 * 1024 * 1024
BODY_WRONG_CONTENT_TYPE = "Expected request with `Content-Type: application/json`"
BODY_INVALID_JSON_PREFIX = "Failed to parse the request body as JSON"
BODY_WRONG_SHAPE_PREFIX = "Failed to deserialize the JSON body into the target type"


def success_response(request_id: Any, result: Any) -> dict[str, Any]:
    """The node's success answer: all four keys, ``error`` null."""
    return {"jsonrpc": JSONRPC_VERSION, "result": result, "error": None, "id": request_id}


def error_response(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    """The node's error answer (HTTP 200): ``result`` null, ``error`` {code, message, data}."""
    return {
        "jsonrpc": JSONRPC_VERSION,
        "result": None,
        "error": {"code": code, "message": message, "data": data},
        "id": request_id,
    }


def error_response_from(request_id: Any, error: RpcError) -> dict[str, Any]:
    """``error_response`` for an ``RpcError`` raised by a rule (its code must be set)."""
    if error.code is None:
        raise ProtocolError(f"RpcError without a JSON-RPC code cannot be answered: {error.message}")
    return error_response(request_id, error.code, error.message, error.data)


def invalid_params(message: str) -> RpcError:
    """A -32602 error with ``message``."""
    return RpcError(INVALID_PARAMS, message)


def request_shape_error(body: Any) -> str | None:
    """Why axum would answer 422 to this parsed JSON body, or None if it is a request object.

    The node's request type has ``jsonrpc: String``, ``method: String``, optional ``params`` and
    ``id``; anything else (an array batch, a missing or non-string field) never reaches JSON-RPC.
    """
    if not isinstance(body, dict):
        return f"{BODY_WRONG_SHAPE_PREFIX}: expected a JSON object, got {type(body).__name__}"
    for field in ("jsonrpc", "method"):
        if field not in body:
            return f"{BODY_WRONG_SHAPE_PREFIX}: missing field `{field}`"
        if not isinstance(body[field], str):
            return f"{BODY_WRONG_SHAPE_PREFIX}: invalid type for `{field}`, expected a string"
    return None


def check_version(body: dict[str, Any]) -> None:
    """Raise -32600 "Invalid Request" unless ``jsonrpc`` is exactly "2.0"."""
    if body.get("jsonrpc") != JSONRPC_VERSION:
        raise RpcError(INVALID_REQUEST, MSG_INVALID_REQUEST)


def check_method(name: str) -> Method:
    """Return the ``Method`` named ``name`` or raise -32601 "Method not found"."""
    try:
        return Method(name)
    except ValueError:
        raise RpcError(METHOD_NOT_FOUND, MSG_METHOD_NOT_FOUND) from None
