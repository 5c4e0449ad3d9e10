"""The node's HTTP side: JSON-RPC on ``POST /rpc``, ``GET /health``, ``GET /metrics``.

``RpcApi`` answers one parsed request object with the BitCell node's exact result shapes and
errors (FACTS §1.2). In front of it the request is read as axum 0.7's ``Json`` extractor reads
it: 415 for a non-JSON content type (``json_content_type_check``, before the body is read), 413
over 2 MB (the server's one body limit, chunked or not), 400 for bad JSON (a number out of f64
range included, as serde_json), 422 for a body that is not a request object (a batch array
included), each with axum's plain-text body. ``rpc_server`` and ``metrics_server`` build the
``http.HttpServer`` of the RPC and metrics ports (the metrics text ends with each peer's
``bitcell_peer_rtt_*`` series).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from bitcell_sim.errors import RpcError
from bitcell_sim.node.http import HttpLimits, HttpServer, Request, Response, Route
from bitcell_sim.node.replay import battle_replay
from bitcell_sim.node.rtt import render_peer_rtts
from bitcell_sim.protocol import jsonrpc as j
from bitcell_sim.protocol import params as p
from bitcell_sim.protocol.block import block_json, transaction_json
from bitcell_sim.protocol.consensus import Phase
from bitcell_sim.protocol.hexcodec import quantity
from bitcell_sim.protocol.metrics import PROMETHEUS_CONTENT_TYPE

if TYPE_CHECKING:
    from bitcell_sim.node.node import Node

log = logging.getLogger(__name__)

#: axum 0.7's body for a request over the body limit.
BODY_TOO_LARGE = "Failed to buffer the request body: length limit exceeded"
GAS_PRICE = "0x3b9aca00"
VERSION = "0.1.0"
NETWORK_ID = "bitcell-testnet"
MINER_STATS = {
    "aggression_index": 0.5,
    "finals_reached": 3,
    "miner": "TODO",
    "tournaments_played": 10,
    "volatility_index": 0.2,
    "win_rate": 0.6,
}
_REQUEST_FIELDS = frozenset(("jsonrpc", "method", "params", "id"))


class HttpReject(Exception):
    """An HTTP-level refusal (status and plain-text body) before JSON-RPC handling."""

    def __init__(self, status: int, text: str) -> None:
        self.status = status
        self.text = text
        super().__init__(f"{status}: {text}")


def is_json_content_type(value: str | None) -> bool:
    """axum's check: a parseable mime ``application/json`` or ``application/*+json``."""
    if not value:
        return False
    essence = value.split(";", 1)[0].strip().lower()
    kind, sep, subtype = essence.partition("/")
    if not sep or kind != "application" or not subtype or " " in subtype:
        return False
    return subtype == "json" or subtype.endswith("+json")


class _Object(dict[str, Any]):
    """A parsed JSON object that remembers keys it saw twice (serde refuses those)."""

    duplicates: frozenset[str] = frozenset()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    seen: set[str] = set()
    for key, value in pairs:
        if key in obj:
            seen.add(key)
        obj[key] = value
    if seen:
        obj.duplicates = frozenset(seen)
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"invalid number {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        # serde_json refuses what does not fit an f64 (and JSON has no Infinity to echo).
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def parse_request_body(raw: bytes) -> dict[str, Any]:
    """Bytes of a ``POST /rpc`` body -> the request object, or ``HttpReject`` 400/422."""
    try:
        text = raw.decode("utf-8")
        body = json.loads(
            text, object_pairs_hook=_object, parse_constant=_no_constant, parse_float=_finite_float
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise HttpReject(j.HTTP_BAD_REQUEST, f"{j.BODY_INVALID_JSON_PREFIX}: {exc}") from None
    shape = j.request_shape_error(body)
    if shape is not None:
        raise HttpReject(j.HTTP_UNPROCESSABLE, shape)
    duplicated = sorted(body.duplicates & _REQUEST_FIELDS) if isinstance(body, _Object) else []
    if duplicated:
        raise HttpReject(
            j.HTTP_UNPROCESSABLE, f"{j.BODY_WRONG_SHAPE_PREFIX}: duplicate field `{duplicated[0]}`"
        )
    return body


def json_content_type_check(headers: Mapping[str, str]) -> Response | None:
    """axum's first check, on the headers alone: 415 unless the body is declared JSON."""
    if is_json_content_type(headers.get("content-type")):
        return None
    return Response.text(j.HTTP_UNSUPPORTED_MEDIA_TYPE, j.BODY_WRONG_CONTENT_TYPE)


class RpcApi:
    """The JSON-RPC methods of a BitCell node, answered from ``node``."""

    def __init__(self, node: Node) -> None:
        self.node = node
        m = j.Method
        self.handlers: dict[j.Method, Callable[[Any], Any]] = {
            m.BLOCK_NUMBER: lambda _: quantity(node.chain.height),
            m.GET_BLOCK_BY_NUMBER: self.get_block_by_number,
            m.GET_TRANSACTION_BY_HASH: self.get_transaction_by_hash,
            m.GET_BALANCE: self.get_balance,
            m.SEND_RAW_TRANSACTION: node.submit_transaction,
            m.GET_TRANSACTION_COUNT: self.get_transaction_count,
            m.GAS_PRICE: lambda _: GAS_PRICE,
            m.GET_NODE_INFO: self.get_node_info,
            m.GET_PEER_COUNT: lambda _: node.peer_count,
            m.GET_NETWORK_METRICS: self.get_network_metrics,
            m.GET_TOURNAMENT_STATE: self.get_tournament_state,
            m.SUBMIT_COMMITMENT: self.submit_commitment,
            m.SUBMIT_REVEAL: self.submit_reveal,
            m.GET_BATTLE_REPLAY: lambda params: battle_replay(p.battle_replay_param(params)),
            m.GET_REPUTATION: self.get_reputation,
            m.GET_MINER_STATS: lambda _: dict(MINER_STATS),
            m.GET_PENDING_BLOCK_INFO: self.get_pending_block_info,
        }

    def handle(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(method name, response object) for one request object."""
        request_id = body.get("id")
        name = body["method"]
        try:
            j.check_version(body)
            method = j.check_method(name)
            result = self.handlers[method](body.get("params"))
        except RpcError as exc:
            return name, j.error_response_from(request_id, exc)
        except Exception:
            # A bug, not a client error: answer rather than drop the connection with a 500.
            log.exception("internal error handling %s", name)
            return name, j.error_response(request_id, j.INTERNAL_ERROR, "Internal error")
        return name, j.success_response(request_id, result)

    # ---- methods --------------------------------------------------------------------------

    def get_block_by_number(self, params: Any) -> Any:
        query = p.block_by_number_params(params)
        chain = self.node.chain
        height = chain.height if query.height is None else query.height
        block = chain.block_at(height)
        return None if block is None else block_json(block, query.full_transactions)

    def get_transaction_by_hash(self, params: Any) -> Any:
        found = self.node.chain.find_transaction(p.tx_hash_param(params))
        if found is None:
            return None
        block, index = found
        return transaction_json(block.transactions[index], block.hash(), block.height, index)

    def get_balance(self, params: Any) -> str:
        account = self.node.chain.account(p.address_param(params))
        return quantity(account.balance if account else 0)

    def get_transaction_count(self, params: Any) -> str:
        account = self.node.chain.account(p.address_param(params))
        return quantity(account.nonce if account else 0)

    def get_node_info(self, _: Any) -> dict[str, Any]:
        node = self.node
        return {
            "api_version": "0.1-alpha",
            "capabilities": ["bitcell/1"],
            "chain_height": node.chain.height,
            "network_id": NETWORK_ID,
            "node_id": node.settings.keypair.public_key.hex(),
            "node_type": "validator" if node.settings.is_validator else "full_node",
            "peer_count": node.peer_count,
            "protocol_version": "1",
            "version": VERSION,
        }

    def get_network_metrics(self, _: Any) -> dict[str, Any]:
        return {
            "height": quantity(self.node.chain.height),
            "peer_count": self.node.peer_count,
            "version": VERSION,
        }

    def get_tournament_state(self, _: Any) -> dict[str, Any]:
        chain = self.node.chain
        height = chain.height
        previous = chain.block_at(height - 1) if height >= 1 else None
        last_winner = (
            "None" if previous is None else f"PublicKey({previous.header.proposer[:8].hex()})"
        )
        return {
            "block": quantity(height),
            "current_round": height,
            "last_winner": last_winner,
            "phase": self.node.phase_now().phase.value,
        }

    def submit_commitment(self, params: Any) -> dict[str, bool]:
        p.commitment_params(params)
        phase = self.node.phase_now().phase
        if phase is Phase.IDLE:
            raise RpcError(j.SERVER_ERROR, j.MSG_NO_ACTIVE_TOURNAMENT)
        if phase is not Phase.COMMIT:
            raise RpcError(j.SERVER_ERROR, j.MSG_NOT_IN_COMMIT_PHASE)
        return {"accepted": True}

    def submit_reveal(self, params: Any) -> dict[str, bool]:
        p.reveal_params(params)
        if self.node.phase_now().phase is not Phase.REVEAL:
            raise RpcError(j.SERVER_ERROR, j.MSG_NOT_IN_REVEAL_PHASE)
        return {"accepted": True}

    def get_reputation(self, params: Any) -> dict[str, Any]:
        return {"miner": p.miner_id_param(params), "r": 10, "s": 2, "trust": 0.8}

    def get_pending_block_info(self, _: Any) -> dict[str, Any]:
        height = self.node.chain.height
        pending = len(self.node.pool)
        return {
            "confirmed": quantity(height),
            "pending": quantity(height + 1 if pending else height),
            "pendingTransactions": pending,
        }


def _json_response(obj: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(obj, separators=(",", ":")).encode(), "application/json")


def health_response(node: Node) -> Response:
    """``{"status": ..., "chain_height": N, "peer_count": N}``, 200 if "ok" else 503."""
    health = node.health()
    body = {
        "status": health.status,
        "chain_height": health.chain_height,
        "peer_count": health.peer_count,
    }
    return _json_response(body, 200 if health.ok else 503)


#: The metrics port takes no request bodies worth more than a few headers.
METRICS_LIMITS = HttpLimits(max_connections=128, max_body_bytes=64 * 1024)
RPC_LIMITS = HttpLimits(max_connections=1024, max_body_bytes=j.MAX_BODY_BYTES)


def rpc_server(node: Node, limits: HttpLimits = RPC_LIMITS) -> HttpServer:
    """The RPC port: ``POST /rpc`` and ``GET /health``."""
    api = RpcApi(node)
    metrics = node.metrics

    def rpc(request: Request) -> Response:
        started = time.perf_counter()
        try:
            body = parse_request_body(request.body)
        except HttpReject as reject:
            metrics.observe_rpc("", time.perf_counter() - started)
            return Response.text(reject.status, reject.text)
        method, answer = api.handle(body)
        out = _json_response(answer)
        metrics.observe_rpc(method, time.perf_counter() - started)
        return out

    routes = [
        Route("POST", "/rpc", rpc, precheck=json_content_type_check),
        Route("GET", "/health", lambda _: health_response(node)),
    ]
    return HttpServer("rpc", routes, limits)


def metrics_server(node: Node, limits: HttpLimits = METRICS_LIMITS) -> HttpServer:
    """The metrics port: ``GET /metrics`` (Prometheus text) and ``GET /health``."""

    def metrics(_: Request) -> Response:
        rtts = {name: link.rtt for name, link in node.links.items()}
        text = node.metrics.render(node.metric_values()) + "\n" + render_peer_rtts(rtts)
        return Response(200, text.encode(), PROMETHEUS_CONTENT_TYPE)

    routes = [
        Route("GET", "/metrics", metrics),
        Route("GET", "/health", lambda _: health_response(node)),
    ]
    return HttpServer("metrics", routes, limits)
