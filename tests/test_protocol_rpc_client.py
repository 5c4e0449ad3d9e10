"""The JSON-RPC calls and clients: pure request/response, every typed method, HTTP failures."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from bitcell_sim.errors import RpcError
from bitcell_sim.protocol import rpc_calls as calls
from bitcell_sim.protocol.errors import ProtocolError
from bitcell_sim.protocol.jsonrpc import Method, error_response, success_response
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.rpc_calls import build_request, parse_response
from bitcell_sim.protocol.rpc_client import AsyncRpcClient, RpcClient, rpc_url
from bitcell_sim.protocol.transaction import sign_transaction

KEY = KeyPair.from_seed("test-seed")
TX = sign_transaction(KEY, KeyPair.from_seed("recipient").public_key, 1000, 21000, 10**9)
TX_ID = "0x746f184b90bdbfc41b8d46dcd311ed75fd44131029190c2cf4e3dbb6b6d409ed"
BLOCK = {"number": "0x1", "hash": "0x" + "ab" * 32, "transactions": []}

# method -> (params the client must send, result the node answers)
RESULTS: dict[str, Any] = {
    "eth_blockNumber": "0x2a",
    "eth_getBlockByNumber": BLOCK,
    "eth_getTransactionByHash": None,
    "eth_getBalance": "0x3e8",
    "eth_getTransactionCount": "0x3",
    "eth_gasPrice": "0x3b9aca00",
    "eth_sendRawTransaction": TX_ID,
    "bitcell_getNodeInfo": {"node_id": KEY.public_key.hex(), "version": "0.1.0"},
    "bitcell_getPeerCount": 6,
    "bitcell_getNetworkMetrics": {"peer_count": 6, "height": "0x2a", "version": "0.1.0"},
    "bitcell_getTournamentState": {"phase": "commit"},
    "bitcell_getPendingBlockInfo": {
        "confirmed": "0x2a",
        "pending": "0x2b",
        "pendingTransactions": 3,
    },
    "bitcell_submitCommitment": {"accepted": True},
    "bitcell_submitReveal": {"accepted": True},
    "bitcell_getReputation": {"miner": "m", "trust": 0.8, "r": 10, "s": 2},
    "bitcell_getMinerStats": {"miner": "TODO", "win_rate": 0.6},
    "bitcell_getBattleReplay": {"block_height": 5, "grid_states": [], "outcome": "Tie"},
}

# (client method name, args, expected method, expected params, expected decoded result)
CASES: list[tuple[str, tuple[Any, ...], str, list[Any], Any]] = [
    ("block_number", (), "eth_blockNumber", [], 42),
    ("get_block_by_number", (), "eth_getBlockByNumber", ["latest", False], BLOCK),
    ("get_block_by_number", (26, True), "eth_getBlockByNumber", ["0x1a", True], BLOCK),
    (
        "get_transaction_by_hash",
        (b"\x01" * 32,),
        "eth_getTransactionByHash",
        ["0x" + "01" * 32],
        None,
    ),
    (
        "get_balance",
        (KEY.public_key,),
        "eth_getBalance",
        ["0x" + KEY.public_key.hex(), "latest"],
        1000,
    ),
    ("get_transaction_count", ("0xab",), "eth_getTransactionCount", ["0xab", "latest"], 3),
    ("gas_price", (), "eth_gasPrice", [], 1_000_000_000),
    ("send_raw_transaction", (TX,), "eth_sendRawTransaction", ["0x" + TX.encode().hex()], TX_ID),
    (
        "send_raw_transaction",
        (TX.encode(),),
        "eth_sendRawTransaction",
        ["0x" + TX.encode().hex()],
        TX_ID,
    ),
    ("get_node_info", (), "bitcell_getNodeInfo", [], RESULTS["bitcell_getNodeInfo"]),
    ("get_peer_count", (), "bitcell_getPeerCount", [], 6),
    (
        "get_network_metrics",
        (),
        "bitcell_getNetworkMetrics",
        [],
        RESULTS["bitcell_getNetworkMetrics"],
    ),
    ("get_tournament_state", (), "bitcell_getTournamentState", [], {"phase": "commit"}),
    (
        "get_pending_block_info",
        (),
        "bitcell_getPendingBlockInfo",
        [],
        RESULTS["bitcell_getPendingBlockInfo"],
    ),
    (
        "submit_commitment",
        (b"\x11" * 32, b"\xab"),
        "bitcell_submitCommitment",
        [{"commitment": "0x" + "11" * 32, "ring_signature": "0xab"}],
        {"accepted": True},
    ),
    (
        "submit_reveal",
        (KEY.public_key, b"\x01", "Heavyweight"),
        "bitcell_submitReveal",
        [
            {
                "miner": "0x" + KEY.public_key.hex(),
                "nonce": "0x01",
                "glider": {"pattern": "Heavyweight"},
            }
        ],
        {"accepted": True},
    ),
    ("get_reputation", ("m",), "bitcell_getReputation", ["m"], RESULTS["bitcell_getReputation"]),
    ("get_miner_stats", (), "bitcell_getMinerStats", [], RESULTS["bitcell_getMinerStats"]),
    ("get_battle_replay", (5,), "bitcell_getBattleReplay", [5], RESULTS["bitcell_getBattleReplay"]),
]


def test_every_method_has_a_case() -> None:
    assert {c[2] for c in CASES} == {m.value for m in Method}


def test_build_request() -> None:
    assert build_request("eth_blockNumber") == {
        "jsonrpc": "2.0",
        "method": "eth_blockNumber",
        "params": [],
        "id": 1,
    }
    assert build_request(Method.GET_BALANCE, ["0xab"], "x")["params"] == ["0xab"]
    assert json.dumps(build_request(Method.GAS_PRICE, None, 7)).startswith('{"jsonrpc": "2.0"')


def test_parse_response() -> None:
    assert parse_response(json.dumps(success_response(1, "0x1"))) == "0x1"
    assert parse_response(success_response(1, None)) is None
    with pytest.raises(RpcError, match="Method not found") as info:
        parse_response(json.dumps(error_response(1, -32601, "Method not found")).encode())
    assert (info.value.code, info.value.message, info.value.data) == (
        -32601,
        "Method not found",
        None,
    )
    with pytest.raises(RpcError, match=r"does not match request 2"):
        parse_response(success_response(1, "0x1"), expected_id=2)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "response is not JSON"),
        (b"[1]", "response is not a JSON object"),
        (b'{"jsonrpc":"2.0","id":1}', "neither result nor error"),
        (b'{"error":{"message":"x"}}', "malformed error member"),
    ],
)
def test_parse_response_malformed(body: bytes, message: str) -> None:
    with pytest.raises(RpcError, match=message) as info:
        parse_response(body)
    assert info.value.code is None


def test_call_builders_are_pure() -> None:
    call = calls.get_balance(KEY.public_key)
    assert call.request(9)["params"] == ["0x" + KEY.public_key.hex(), "latest"]
    assert call.result(json.dumps(success_response(9, "0xff"))) == 255
    with pytest.raises(RpcError, match="unexpected result of eth_getBalance: 'zz'"):
        call.result(success_response(9, "zz"))
    with pytest.raises(RpcError, match="unexpected result of bitcell_getPeerCount"):
        calls.get_peer_count().result(success_response(1, "0x6"))
    with pytest.raises(RpcError, match="unexpected result of bitcell_getNodeInfo"):
        calls.get_node_info().result(success_response(1, []))


def node_handler(seen: list[dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/rpc"
        assert request.headers["content-type"] == "application/json"
        body = json.loads(request.content)
        seen.append(body)
        method = body["method"]
        if method not in RESULTS:
            return httpx.Response(200, json=error_response(body["id"], -32601, "Method not found"))
        return httpx.Response(200, json=success_response(body["id"], RESULTS[method]))

    return handle


@pytest.mark.parametrize(("name", "args", "method", "params", "expected"), CASES)
def test_sync_client_methods(
    name: str, args: tuple[Any, ...], method: str, params: list[Any], expected: Any
) -> None:
    seen: list[dict[str, Any]] = []
    with RpcClient(
        "http://node:8545/", transport=httpx.MockTransport(node_handler(seen))
    ) as client:
        assert getattr(client, name)(*args) == expected
    assert seen == [{"jsonrpc": "2.0", "method": method, "params": params, "id": 1}]


@pytest.mark.parametrize(("name", "args", "method", "params", "expected"), CASES)
def test_async_client_methods(
    name: str, args: tuple[Any, ...], method: str, params: list[Any], expected: Any
) -> None:
    seen: list[dict[str, Any]] = []

    async def go() -> Any:
        transport = httpx.MockTransport(node_handler(seen))
        async with AsyncRpcClient("http://node:8545", transport=transport) as client:
            return await getattr(client, name)(*args)

    assert asyncio.run(go()) == expected
    assert seen[0]["method"] == method and seen[0]["params"] == params


def test_generic_call_and_ids_increase() -> None:
    seen: list[dict[str, Any]] = []
    client = RpcClient("http://node:8545", transport=httpx.MockTransport(node_handler(seen)))
    assert client.call("eth_gasPrice") == "0x3b9aca00"
    with pytest.raises(RpcError, match="Method not found") as info:
        client.call("net_peerCount", [])
    assert info.value.code == -32601
    assert [s["id"] for s in seen] == [1, 2]
    client.close()


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (415, "Expected request with `Content-Type: application/json`"),
        (400, "Failed to parse the request body as JSON"),
        (422, "Failed to deserialize the JSON body into the target type"),
        (413, ""),
        (404, ""),
        (503, "no server is available"),
    ],
)
def test_http_status_failures(status: int, text: str) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(status, text=text))
    client = RpcClient("http://node:8545", transport=transport)
    with pytest.raises(RpcError, match=f"HTTP {status} from http://node:8545/rpc") as info:
        client.block_number()
    assert info.value.code is None
    assert info.value.data == {"status": status, "body": text}


def test_malformed_body_names_url() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, text="<html>"))
    with pytest.raises(RpcError, match=r"bad response from http://n/rpc: response is not JSON"):
        RpcClient("http://n", transport=transport).block_number()


def test_transport_failures_are_rpc_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(RpcError, match="cannot connect to http://n/rpc: connection refused"):
        RpcClient("http://n", transport=httpx.MockTransport(refuse)).gas_price()
    with pytest.raises(RpcError, match=r"timeout after 2.5 s calling eth_gasPrice at http://n/rpc"):
        RpcClient("http://n", timeout_s=2.5, transport=httpx.MockTransport(slow)).gas_price()


def test_bad_timeout() -> None:
    with pytest.raises(ProtocolError, match=r"timeout_s\(=0\) must be > 0"):
        RpcClient("http://n", timeout_s=0)


def test_rpc_url() -> None:
    assert rpc_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545/rpc"
    assert rpc_url("http://lb/") == "http://lb/rpc"


# --- real sockets: a tiny aiohttp node on 127.0.0.1, port 0 -------------------------------


class TinyNode:
    """A real HTTP server answering like a node, plus paths that fail at the HTTP level."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def rpc(self, request: web.Request) -> web.StreamResponse:
        if request.content_type != "application/json":
            return web.Response(
                status=415, text="Expected request with `Content-Type: application/json`"
            )
        body = await request.json()
        method = body["method"]
        if method in RESULTS:
            return web.json_response(success_response(body["id"], RESULTS[method]))
        return web.json_response(error_response(body["id"], -32601, "Method not found"))

    async def status(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=int(request.match_info["code"]), text="plain failure")

    async def slow(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.json_response(success_response(1, "0x0"))

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/rpc", self.rpc)
        app.router.add_post("/status/{code}/rpc", self.status)
        app.router.add_post("/slow/rpc", self.slow)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _shutdown(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        # A handler still sleeping (the timeout test's) is cancelled, not left pending.
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def tiny_node() -> Iterator[TinyNode]:
    node = TinyNode()
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.mark.real
@pytest.mark.timeout(30)
def test_real_socket_sync_and_async(tiny_node: TinyNode) -> None:
    base = f"http://127.0.0.1:{tiny_node.port}"
    with RpcClient(base) as client:
        assert client.block_number() == 42
        assert client.send_raw_transaction(TX) == TX_ID
        assert client.get_pending_block_info()["pendingTransactions"] == 3
        with pytest.raises(RpcError, match="Method not found"):
            client.call("eth_getTransactionReceipt", [TX_ID])

    async def go() -> tuple[int, int]:
        async with AsyncRpcClient(base) as client:
            results = await asyncio.gather(*(client.block_number() for _ in range(20)))
            return results[0], await client.get_peer_count()

    assert asyncio.run(go()) == (42, 6)


@pytest.mark.real
@pytest.mark.timeout(30)
def test_real_socket_http_failures(tiny_node: TinyNode) -> None:
    base = f"http://127.0.0.1:{tiny_node.port}"
    for code in (400, 413, 422):
        url = f"{base}/status/{code}"
        with pytest.raises(RpcError, match=f"HTTP {code} from {url}/rpc: plain failure"):
            RpcClient(url).gas_price()
    # A raw POST without the JSON content type gets the node's 415.
    resp = httpx.post(f"{base}/rpc", content=b"{}", headers={"content-type": "text/plain"})
    assert resp.status_code == 415
    with pytest.raises(RpcError, match=r"timeout after 0.3 s calling eth_blockNumber"):
        RpcClient(f"{base}/slow", timeout_s=0.3).block_number()


@pytest.mark.real
@pytest.mark.timeout(30)
def test_real_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on the port any more.
    with pytest.raises(RpcError, match=f"cannot connect to http://127.0.0.1:{port}/rpc"):
        RpcClient(f"http://127.0.0.1:{port}", timeout_s=2).block_number()

    async def go() -> None:
        async with AsyncRpcClient(f"http://127.0.0.1:{port}", timeout_s=2) as client:
            await client.block_number()

    with pytest.raises(RpcError, match="cannot connect to"):
        asyncio.run(go())
