"""A minimal BitCell JSON-RPC endpoint for the load tool: admits, pools, makes blocks.

:class:`Sink` answers the methods the load test calls as a node does (decoding submissions, the
-32603 pool-full and duplicate answers) and makes a block of up to ``max_txs`` pooled txs every
``round_s``; ``delay_s`` answers submissions late, ``mode`` "never" makes no blocks and "freeze"
stops at the first block with a tx (a real node at HEAD). ``python -m bitcell_sim.load.sink``
serves one and prints ``SINK READY <url>``: the benchmark's and tests' fast endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from bitcell_sim.errors import RpcError
from bitcell_sim.protocol.admission import MSG_ALREADY_IN_POOL, MSG_POOL_FULL
from bitcell_sim.protocol.hexcodec import quantity
from bitcell_sim.protocol.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    MSG_METHOD_NOT_FOUND,
    error_response,
    success_response,
)
from bitcell_sim.protocol.transaction import Transaction

Mode = Literal["produce", "never", "freeze"]
MODES: tuple[Mode, ...] = ("produce", "never", "freeze")
READY_PREFIX = "SINK READY "


@dataclass
class SinkBlock:
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    tx_ids: list[str] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        return {
            "number": quantity(self.number),
            "hash": "0x" + self.hash,
            "parentHash": "0x" + self.parent_hash,
            "timestamp": quantity(self.timestamp),
            "transactions": ["0x" + t for t in self.tx_ids],
        }


class Sink:
    """The endpoint's state: a pool (ordered by arrival) and a chain of :class:`SinkBlock`."""

    def __init__(
        self,
        round_s: float = 1.0,
        pool_capacity: int = 10_000,
        max_txs: int = 1000,
        mode: Mode = "produce",
        verify: bool = False,
        delay_s: float = 0.0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode(={mode!r}) must be one of {', '.join(MODES)}")
        self.round_s = round_s
        self.pool_capacity = pool_capacity
        self.max_txs = max_txs
        self.mode = mode
        self.verify = verify
        self.delay_s = delay_s
        self.pool: OrderedDict[str, None] = OrderedDict()
        genesis = SinkBlock(0, hashlib.sha256(b"sink-genesis").hexdigest(), "0" * 64, 0)
        self.chain = [genesis]
        self.frozen = False
        self.submitted = 0

    def submit(self, params: Any) -> str:
        if not isinstance(params, list) or not params or not isinstance(params[0], str):
            raise RpcError(INVALID_PARAMS, "Missing transaction data")
        text = params[0][2:] if params[0].startswith("0x") else params[0]
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise RpcError(INVALID_PARAMS, "Invalid hex encoding") from None
        try:
            tx = Transaction.decode(raw)
        except Exception as exc:  # the node answers every decode failure the same way
            raise RpcError(INVALID_PARAMS, f"Failed to deserialize transaction: {exc}") from None
        if self.verify and not tx.verify_signature():
            raise RpcError(INVALID_PARAMS, "Invalid transaction signature")
        tx_id = hashlib.sha256(tx.encode()).hexdigest()
        if tx_id in self.pool:
            raise RpcError(INTERNAL_ERROR, MSG_ALREADY_IN_POOL)
        if len(self.pool) >= self.pool_capacity:
            raise RpcError(INTERNAL_ERROR, MSG_POOL_FULL)
        self.pool[tx_id] = None
        self.submitted += 1
        return "0x" + tx_id

    def make_block(self) -> SinkBlock | None:
        """The next block, or None when this sink makes none now."""
        if self.mode == "never" or self.frozen:
            return None
        tx_ids: list[str] = []
        while self.pool and len(tx_ids) < self.max_txs:
            tx_ids.append(self.pool.popitem(last=False)[0])
        if tx_ids and self.mode == "freeze":
            # A real node at HEAD cannot validate its own block once it holds a tx.
            for tx_id in reversed(tx_ids):
                self.pool[tx_id] = None
                self.pool.move_to_end(tx_id, last=False)
            self.frozen = True
            return None
        parent = self.chain[-1]
        number = parent.number + 1
        digest = hashlib.sha256(f"{number}:{parent.hash}:{','.join(tx_ids)}".encode()).hexdigest()
        block = SinkBlock(number, digest, parent.hash, int(time.time()), tx_ids)
        self.chain.append(block)
        return block

    def block(self, tag: Any) -> dict[str, Any] | None:
        if tag in ("latest", "pending"):
            return self.chain[-1].json()
        if tag == "earliest":
            return self.chain[0].json()
        if not isinstance(tag, str):
            raise RpcError(INVALID_PARAMS, "Block number must be a string")
        try:
            number = int(tag[2:] if tag.startswith("0x") else tag, 16)
        except ValueError:
            raise RpcError(INVALID_PARAMS, "Invalid block number format") from None
        return self.chain[number].json() if number < len(self.chain) else None

    def dispatch(self, method: str, params: Any) -> Any:
        height = self.chain[-1].number
        if method == "eth_sendRawTransaction":
            return self.submit(params)
        if method == "eth_blockNumber":
            return quantity(height)
        if method == "eth_getBlockByNumber":
            if not isinstance(params, list) or not params:
                raise RpcError(INVALID_PARAMS, "Missing block number")
            return self.block(params[0])
        if method in ("eth_getBalance", "eth_getTransactionCount"):
            return "0x0"
        if method == "bitcell_getPendingBlockInfo":
            pending = len(self.pool)
            return {
                "confirmed": quantity(height),
                "pending": quantity(height + 1 if pending else height),
                "pendingTransactions": pending,
            }
        raise RpcError(METHOD_NOT_FOUND, MSG_METHOD_NOT_FOUND)

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.Response(status=400, text="Failed to parse the request body as JSON")
        request_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(body.get("method"), str):
            return web.Response(status=422, text="Failed to deserialize the JSON body")
        if self.delay_s > 0 and body["method"] == "eth_sendRawTransaction":
            # A slow node: the answer to a submission comes delay_s late (admission is at once).
            await asyncio.sleep(self.delay_s)
        try:
            answer = success_response(request_id, self.dispatch(body["method"], body.get("params")))
        except RpcError as exc:
            assert exc.code is not None
            answer = error_response(request_id, exc.code, exc.message)
        return web.Response(body=json.dumps(answer), content_type="application/json")

    async def produce(self) -> None:
        """Make a block every ``round_s`` (a round's end)."""
        while True:
            await asyncio.sleep(self.round_s)
            self.make_block()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=2 * 1024 * 1024)
        app.router.add_post("/rpc", self.handle)
        return app


@dataclass
class SinkServer:
    """A running sink: its ``url``; ``close()`` stops serving and making blocks."""

    url: str
    runner: web.AppRunner
    producer: asyncio.Task[None]

    async def close(self) -> None:
        self.producer.cancel()
        await self.runner.cleanup()


async def start(sink: Sink, host: str = "127.0.0.1", port: int = 0) -> SinkServer:
    """Serve ``sink`` on ``host:port`` (0: a free port) and start making its blocks."""
    runner = web.AppRunner(sink.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound = runner.addresses[0][1]
    return SinkServer(f"http://{host}:{bound}", runner, asyncio.create_task(sink.produce()))


async def serve(sink: Sink, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve ``sink`` until ``stop`` is set, after printing the ready line."""
    server = await start(sink, host, port)
    print(f"{READY_PREFIX}{server.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bitcell_sim.load.sink",
        description="A minimal BitCell JSON-RPC endpoint for exercising the load tool.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--round", type=float, default=1.0, help="seconds between blocks")
    parser.add_argument("--pool", type=int, default=10_000, help="pool capacity")
    parser.add_argument("--max-txs", type=int, default=1000, help="txs per block")
    parser.add_argument("--mode", choices=MODES, default="produce")
    parser.add_argument("--verify", action="store_true", help="check tx signatures")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each tx answer")
    args = parser.parse_args(argv)
    sink = Sink(args.round, args.pool, args.max_txs, args.mode, args.verify, args.delay)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(sink, args.host, args.port, stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
