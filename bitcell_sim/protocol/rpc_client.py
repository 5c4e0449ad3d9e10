"""Typed JSON-RPC clients for BitCell nodes (the devnet's or a real one), over httpx.

``RpcClient`` (blocking) and ``AsyncRpcClient`` POST to ``<base_url>/rpc``, with one typed
method per contract method plus ``call(method, params)`` and an injectable httpx ``transport``.
JSON-RPC errors raise ``RpcError(code, message, data)``; HTTP-level failures (status, refused
connection, timeout, malformed body) raise ``RpcError`` with code None naming the URL.
"""

from __future__ import annotations

import itertools
from typing import Any, TypeVar

import httpx

from bitcell_sim.errors import RpcError
from bitcell_sim.protocol import rpc_calls as calls
from bitcell_sim.protocol.errors import ProtocolError
from bitcell_sim.protocol.rpc_calls import RpcCall, parse_response, preview
from bitcell_sim.protocol.transaction import Transaction

T = TypeVar("T")


def rpc_url(base_url: str) -> str:
    """``<base_url>/rpc``, the node's only JSON-RPC path (a POST to ``/`` is a 404)."""
    return base_url.rstrip("/") + "/rpc"


def _http_error(url: str, response: httpx.Response) -> RpcError:
    return RpcError(
        None,
        f"HTTP {response.status_code} from {url}: {preview(response.text)}",
        {"status": response.status_code, "body": response.text},
    )


def _transport_error(url: str, method: str, timeout_s: float, exc: httpx.HTTPError) -> RpcError:
    if isinstance(exc, httpx.TimeoutException):
        return RpcError(None, f"timeout after {timeout_s} s calling {method} at {url}")
    if isinstance(exc, httpx.ConnectError):
        return RpcError(None, f"cannot connect to {url}: {exc}")
    return RpcError(None, f"HTTP transport error calling {method} at {url}: {exc!r}")


class _Base:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        if timeout_s <= 0:
            raise ProtocolError(f"timeout_s(={timeout_s}) must be > 0")
        self.url = rpc_url(base_url)
        self.timeout_s = timeout_s
        self._ids = itertools.count(1)

    def _finish(self, call: RpcCall[T], response: httpx.Response, request_id: int) -> T:
        if response.status_code != 200:
            raise _http_error(self.url, response)
        try:
            raw = parse_response(response.content, expected_id=request_id)
        except RpcError as exc:
            if exc.code is not None:
                raise
            raise RpcError(None, f"bad response from {self.url}: {exc.message}") from None
        return call.decode_result(raw)


class RpcClient(_Base):
    """Blocking client: ``RpcClient("http://127.0.0.1:8545").block_number()``."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, timeout_s)
        self._http = httpx.Client(timeout=timeout_s, transport=transport)

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def run(self, call: RpcCall[T]) -> T:
        """Send ``call`` and return its decoded result."""
        request_id = next(self._ids)
        try:
            response = self._http.post(self.url, json=call.request(request_id))
        except httpx.HTTPError as exc:
            raise _transport_error(self.url, call.method, self.timeout_s, exc) from None
        return self._finish(call, response, request_id)

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        """Any method, raw result."""
        return self.run(RpcCall(method, [] if params is None else params, lambda r: r))

    def block_number(self) -> int:
        return self.run(calls.block_number())

    def get_block_by_number(
        self, tag: int | str = "latest", full: bool = False
    ) -> dict[str, Any] | None:
        return self.run(calls.get_block_by_number(tag, full))

    def get_transaction_by_hash(self, tx_id: bytes | str) -> dict[str, Any] | None:
        return self.run(calls.get_transaction_by_hash(tx_id))

    def get_balance(self, address: bytes | str, tag: str = "latest") -> int:
        return self.run(calls.get_balance(address, tag))

    def get_transaction_count(self, address: bytes | str, tag: str = "latest") -> int:
        return self.run(calls.get_transaction_count(address, tag))

    def send_raw_transaction(self, raw: bytes | Transaction) -> str:
        return self.run(calls.send_raw_transaction(raw))

    def gas_price(self) -> int:
        return self.run(calls.gas_price())

    def get_node_info(self) -> dict[str, Any]:
        return self.run(calls.get_node_info())

    def get_peer_count(self) -> int:
        return self.run(calls.get_peer_count())

    def get_network_metrics(self) -> dict[str, Any]:
        return self.run(calls.get_network_metrics())

    def get_tournament_state(self) -> dict[str, Any]:
        return self.run(calls.get_tournament_state())

    def get_pending_block_info(self) -> dict[str, Any]:
        return self.run(calls.get_pending_block_info())

    def submit_commitment(self, commitment: bytes, ring_signature: bytes = b"") -> dict[str, Any]:
        return self.run(calls.submit_commitment(commitment, ring_signature))

    def submit_reveal(
        self, miner: bytes, nonce: bytes, pattern: str = "Standard"
    ) -> dict[str, Any]:
        return self.run(calls.submit_reveal(miner, nonce, pattern))

    def get_reputation(self, miner_id: str) -> dict[str, Any]:
        return self.run(calls.get_reputation(miner_id))

    def get_miner_stats(self) -> dict[str, Any]:
        return self.run(calls.get_miner_stats())

    def get_battle_replay(self, block_height: int) -> dict[str, Any]:
        return self.run(calls.get_battle_replay(block_height))


class AsyncRpcClient(_Base):
    """asyncio client with the same methods as ``RpcClient``, each a coroutine."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, timeout_s)
        self._http = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def __aenter__(self) -> AsyncRpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def run(self, call: RpcCall[T]) -> T:
        request_id = next(self._ids)
        try:
            response = await self._http.post(self.url, json=call.request(request_id))
        except httpx.HTTPError as exc:
            raise _transport_error(self.url, call.method, self.timeout_s, exc) from None
        return self._finish(call, response, request_id)

    async def call(self, method: str, params: list[Any] | None = None) -> Any:
        return await self.run(RpcCall(method, [] if params is None else params, lambda r: r))

    async def block_number(self) -> int:
        return await self.run(calls.block_number())

    async def get_block_by_number(
        self, tag: int | str = "latest", full: bool = False
    ) -> dict[str, Any] | None:
        return await self.run(calls.get_block_by_number(tag, full))

    async def get_transaction_by_hash(self, tx_id: bytes | str) -> dict[str, Any] | None:
        return await self.run(calls.get_transaction_by_hash(tx_id))

    async def get_balance(self, address: bytes | str, tag: str = "latest") -> int:
        return await self.run(calls.get_balance(address, tag))

    async def get_transaction_count(self, address: bytes | str, tag: str = "latest") -> int:
        return await self.run(calls.get_transaction_count(address, tag))

    async def send_raw_transaction(self, raw: bytes | Transaction) -> str:
        return await self.run(calls.send_raw_transaction(raw))

    async def gas_price(self) -> int:
        return await self.run(calls.gas_price())

    async def get_node_info(self) -> dict[str, Any]:
        return await self.run(calls.get_node_info())

    async def get_peer_count(self) -> int:
        return await self.run(calls.get_peer_count())

    async def get_network_metrics(self) -> dict[str, Any]:
        return await self.run(calls.get_network_metrics())

    async def get_tournament_state(self) -> dict[str, Any]:
        return await self.run(calls.get_tournament_state())

    async def get_pending_block_info(self) -> dict[str, Any]:
        return await self.run(calls.get_pending_block_info())

    async def submit_commitment(
        self, commitment: bytes, ring_signature: bytes = b""
    ) -> dict[str, Any]:
        return await self.run(calls.submit_commitment(commitment, ring_signature))

    async def submit_reveal(
        self, miner: bytes, nonce: bytes, pattern: str = "Standard"
    ) -> dict[str, Any]:
        return await self.run(calls.submit_reveal(miner, nonce, pattern))

    async def get_reputation(self, miner_id: str) -> dict[str, Any]:
        return await self.run(calls.get_reputation(miner_id))

    async def get_miner_stats(self) -> dict[str, Any]:
        return await self.run(calls.get_miner_stats())

    async def get_battle_replay(self, block_height: int) -> dict[str, Any]:
        return await self.run(calls.get_battle_replay(block_height))
