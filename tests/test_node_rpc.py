"""The RPC, health and metrics contract of a real node process (FACTS §1.2, §2.6, §3).

One single-validator node (module fixture, killed by pid in teardown) answers every method;
result shapes, every documented error row, the HTTP-level refusals, /health on both ports and
the Prometheus catalogue are checked against it over real sockets, and so are its HTTP bounds:
one body limit, slow and silent connections closed, a connection cap, malformed requests
answered 400 with one WARNING per client, never a 500.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bitcell_sim.node.harness import HOST, LocalNet, NodeProcess, wait_for
from bitcell_sim.node.http import BODY_TIMEOUT_S, HEADER_TIMEOUT_S
from bitcell_sim.node.rpc import RPC_LIMITS
from bitcell_sim.protocol import jsonrpc as j
from bitcell_sim.protocol.admission import (
    MAX_GAS_LIMIT,
    MAX_GAS_PRICE,
    MSG_ALREADY_IN_POOL,
    MSG_INSUFFICIENT_BALANCE,
    MSG_INVALID_SIGNATURE,
    MSG_NEW_ACCOUNT_GAS,
)
from bitcell_sim.protocol.identity import funded_sender, node_keypair
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.metrics import NODE_METRICS, parse_prometheus
from bitcell_sim.protocol.transaction import Transaction, sign_transaction

pytestmark = [pytest.mark.real, pytest.mark.timeout(120)]

NETWORK = "rpctest"
GOLDEN_ID = "0x746f184b90bdbfc41b8d46dcd311ed75fd44131029190c2cf4e3dbb6b6d409ed"
GOLDEN = KeyPair.from_seed("test-seed")
RECIPIENT = KeyPair.from_seed("recipient").public_key
# The golden vector moves 1000 units: its sender is funded at genesis.
GOLDEN_ACCOUNTS = {GOLDEN.public_key: 10**6}
QTY = re.compile(r"^0x(0|[1-9a-f][0-9a-f]*)$")
HASH = re.compile(r"^0x[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    net = LocalNet(
        tmp_path_factory.mktemp("rpc"), {"v": "validator"}, name=NETWORK, accounts=GOLDEN_ACCOUNTS
    )
    try:
        net.start()
        yield net.nodes["v"]
    finally:
        net.close()


def post(node: NodeProcess, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{node.rpc_url}/rpc", json=body, timeout=10, trust_env=False, **kwargs)


def call(node: NodeProcess, method: str, params: Any = None, *, omit: bool = False) -> Any:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": 7}
    if not omit:
        body["params"] = params
    response = post(node, body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert list(data) == ["jsonrpc", "result", "error", "id"] and data["id"] == 7
    return data


def result(node: NodeProcess, method: str, params: Any = None) -> Any:
    data = call(node, method, params)
    assert data["error"] is None, data
    return data["result"]


def raw(tx: Transaction) -> str:
    return "0x" + tx.encode().hex()


# ---- result shapes -------------------------------------------------------------------------


def test_result_shapes(node: NodeProcess) -> None:
    wait_for(lambda: int(result(node, "eth_blockNumber"), 16) >= 1, what="block 1")
    assert QTY.match(result(node, "eth_blockNumber"))
    assert result(node, "eth_gasPrice") == "0x3b9aca00"
    block = result(node, "eth_getBlockByNumber", ["latest", False])
    assert list(block) == sorted(block)
    assert HASH.match(block["hash"]) and QTY.match(block["number"])
    assert block["difficulty"] == "0x1" and block["uncles"] == [] and block["gasUsed"] == "0x0"
    assert block["miner"] == "0x" + node_keypair(NETWORK, "v").public_key.hex()
    assert re.match(r"^0x[0-9a-f]{16}$", block["nonce"])
    assert result(node, "eth_getBlockByNumber", ["earliest"])["number"] == "0x0"
    assert result(node, "eth_getBlockByNumber", ["0x0", True])["transactions"] == []
    assert result(node, "eth_getBlockByNumber", ["pending"])["hash"] is not None
    assert result(node, "eth_getBlockByNumber", ["0xffffff"]) is None
    assert result(node, "eth_getTransactionByHash", ["0x" + "00" * 32]) is None
    assert result(node, "eth_getBalance", ["0x" + RECIPIENT.hex(), "latest"]) == "0x0"
    assert result(node, "eth_getTransactionCount", ["0x" + RECIPIENT.hex()]) == "0x0"
    info = result(node, "bitcell_getNodeInfo")
    assert info == {
        "api_version": "0.1-alpha",
        "capabilities": ["bitcell/1"],
        "chain_height": info["chain_height"],
        "network_id": "bitcell-testnet",
        "node_id": node_keypair(NETWORK, "v").public_key.hex(),
        "node_type": "validator",
        "peer_count": 0,
        "protocol_version": "1",
        "version": "0.1.0",
    }
    assert result(node, "bitcell_getPeerCount") == 0
    metrics = result(node, "bitcell_getNetworkMetrics")
    assert set(metrics) == {"peer_count", "height", "version"} and QTY.match(metrics["height"])
    state = result(node, "bitcell_getTournamentState")
    assert set(state) == {"block", "current_round", "phase", "last_winner"}
    assert state["phase"] in ("commit", "reveal", "battle")
    assert state["block"] == hex(state["current_round"])
    assert re.match(r"^PublicKey\([0-9a-f]{16}\)$", state["last_winner"])
    assert result(node, "bitcell_getReputation", ["m1"]) == {
        "miner": "m1",
        "r": 10,
        "s": 2,
        "trust": 0.8,
    }
    assert result(node, "bitcell_getMinerStats")["miner"] == "TODO"
    pending = result(node, "bitcell_getPendingBlockInfo")
    assert set(pending) == {"confirmed", "pending", "pendingTransactions"}
    replay = result(node, "bitcell_getBattleReplay", [3])
    assert replay["block_height"] == 3 and len(replay["grid_states"]) == 11


def test_params_are_optional_for_methods_that_ignore_them(node: NodeProcess) -> None:
    for method in ("eth_blockNumber", "eth_gasPrice", "bitcell_getNodeInfo"):
        assert call(node, method, omit=True)["error"] is None
        assert call(node, method, {"any": "thing"})["error"] is None


# ---- error rows ----------------------------------------------------------------------------

BAD = j.INVALID_PARAMS
ADDRESS_METHODS = ("eth_getBalance", "eth_getTransactionCount")
GOOD_REVEAL = {
    "miner": "0x" + RECIPIENT.hex(),
    "nonce": "0x01",
    "glider": {"pattern": "Standard"},
}

ERROR_ROWS: list[tuple[str, Any, int, str]] = [
    ("eth_getBlockByNumber", None, BAD, "Invalid params"),
    ("eth_getBlockByNumber", {}, BAD, "Params must be an array"),
    ("eth_getBlockByNumber", [], BAD, "Missing block number"),
    ("eth_getBlockByNumber", [1], BAD, "Block number must be a string"),
    ("eth_getBlockByNumber", ["0xzz"], BAD, "Invalid block number format"),
    ("eth_getTransactionByHash", [], BAD, "Missing transaction hash"),
    ("eth_getTransactionByHash", [5], BAD, "Transaction hash must be a string"),
    ("eth_getTransactionByHash", ["0xabc"], BAD, "Invalid hex encoding"),
    ("eth_getTransactionByHash", ["0x00"], BAD, "Transaction hash must be 32 bytes"),
    *[
        row
        for m in ADDRESS_METHODS
        for row in (
            (m, None, BAD, "Invalid params"),
            (m, "x", BAD, "Params must be an array"),
            (m, [], BAD, "Missing address"),
            (m, [{}], BAD, "Address must be a string"),
            (m, ["0xg0"], BAD, "Invalid address format"),
            (m, ["0x" + "00" * 20], BAD, "Address must be 33 bytes (compressed public key)"),
        )
    ],
    ("eth_sendRawTransaction", None, BAD, "Invalid params"),
    ("eth_sendRawTransaction", [], BAD, "Missing transaction data"),
    ("eth_sendRawTransaction", [1], BAD, "Transaction data must be a string"),
    ("eth_sendRawTransaction", ["0x0"], BAD, "Invalid hex encoding"),
    (
        "eth_sendRawTransaction",
        ["0x00"],
        BAD,
        "Failed to deserialize transaction: io error: unexpected end of file",
    ),
    (
        "eth_sendRawTransaction",
        ["0x" + "00" * 8 + "2000000000000000" + "00" * 200],
        BAD,
        "Failed to deserialize transaction: Invalid public key length",
    ),
    ("bitcell_submitCommitment", [], BAD, "Missing arguments"),
    ("bitcell_submitCommitment", [1], BAD, "Argument must be an object"),
    ("bitcell_submitCommitment", [{"ring_signature": "0x"}], BAD, "Missing commitment"),
    ("bitcell_submitCommitment", [{"commitment": "0x00"}], BAD, "Missing ring_signature"),
    (
        "bitcell_submitCommitment",
        [{"commitment": "0xz", "ring_signature": "0x"}],
        BAD,
        "Invalid hex for commitment",
    ),
    (
        "bitcell_submitCommitment",
        [{"commitment": "0x00", "ring_signature": "0xq"}],
        BAD,
        "Invalid hex for signature",
    ),
    (
        "bitcell_submitCommitment",
        [{"commitment": "0x00", "ring_signature": "0x"}],
        BAD,
        "Commitment must be 32 bytes",
    ),
    ("bitcell_submitReveal", [], BAD, "Missing arguments"),
    ("bitcell_submitReveal", [{**GOOD_REVEAL, "miner": None}], BAD, "Missing miner"),
    ("bitcell_submitReveal", [{"miner": "0x", "glider": {}}], BAD, "Missing nonce"),
    ("bitcell_submitReveal", [{**GOOD_REVEAL, "glider": "x"}], BAD, "Missing glider"),
    ("bitcell_submitReveal", [{**GOOD_REVEAL, "miner": "0xzz"}], BAD, "Invalid hex for miner"),
    (
        "bitcell_submitReveal",
        [{**GOOD_REVEAL, "miner": "0x0102"}],
        BAD,
        "Miner public key must be 33 bytes",
    ),
    (
        "bitcell_submitReveal",
        [{**GOOD_REVEAL, "miner": "0x04" + "11" * 32}],
        BAD,
        "Invalid miner public key",
    ),
    ("bitcell_submitReveal", [{**GOOD_REVEAL, "nonce": "0xq"}], BAD, "Invalid hex for nonce"),
    ("bitcell_submitReveal", [{**GOOD_REVEAL, "glider": {}}], BAD, "Missing glider pattern"),
    (
        "bitcell_submitReveal",
        [{**GOOD_REVEAL, "glider": {"pattern": "Huge"}}],
        BAD,
        "Unknown glider pattern",
    ),
    ("bitcell_getBattleReplay", [], BAD, "Missing arguments (block_height)"),
    ("bitcell_getBattleReplay", ["0x1"], BAD, "Invalid block height"),
    ("bitcell_getBattleReplay", [-1], BAD, "Invalid block height"),
    ("bitcell_getReputation", [], BAD, "Missing miner ID"),
    ("bitcell_getReputation", [7], BAD, "Miner ID must be a string"),
    ("eth_getTransactionReceipt", [], j.METHOD_NOT_FOUND, "Method not found"),
    ("net_peerCount", [], j.METHOD_NOT_FOUND, "Method not found"),
    ("bitcell_getBlock", [], j.METHOD_NOT_FOUND, "Method not found"),
    ("no_suchMethod", [], j.METHOD_NOT_FOUND, "Method not found"),
]


@pytest.mark.parametrize(("method", "params", "code", "message"), ERROR_ROWS)
def test_error_rows(node: NodeProcess, method: str, params: Any, code: int, message: str) -> None:
    data = call(node, method, params, omit=params is None)
    assert data["result"] is None
    assert data["error"] == {"code": code, "message": message, "data": None}


def test_wrong_version_is_invalid_request(node: NodeProcess) -> None:
    for version in ("1.0", "2", ""):
        data = post(node, {"jsonrpc": version, "method": "eth_blockNumber", "id": "x"}).json()
        assert data["error"] == {"code": -32600, "message": "Invalid Request", "data": None}
        assert data["id"] == "x"
    data = post(node, {"jsonrpc": "2.0", "method": "eth_blockNumber"}).json()
    assert data["id"] is None and data["error"] is None


# ---- eth_sendRawTransaction admission ------------------------------------------------------


def fresh(
    gas_price: int = 10**9, gas_limit: int = 21000, nonce: int = 0, amount: int = 0
) -> Transaction:
    return sign_transaction(
        KeyPair.generate(), RECIPIENT, amount, gas_limit, gas_price, nonce=nonce
    )


def send_error(node: NodeProcess, tx: Transaction | str) -> dict[str, Any]:
    data = call(node, "eth_sendRawTransaction", [tx if isinstance(tx, str) else raw(tx)])
    assert data["result"] is None
    return dict(data["error"])


@pytest.fixture()
def fresh_node(tmp_path: Path) -> Iterator[NodeProcess]:
    """A node of its own, for a test that spends the golden sender's nonce 0 (and its rerun)."""
    net = LocalNet(tmp_path, {"v": "validator"}, name=NETWORK, accounts=GOLDEN_ACCOUNTS)
    try:
        net.start()
        yield net.nodes["v"]
    finally:
        net.close()


def test_golden_vector_is_accepted(fresh_node: NodeProcess) -> None:
    node = fresh_node
    golden = sign_transaction(GOLDEN, RECIPIENT, 1000, 21000, 1_000_000_000)
    assert golden.encode().hex().endswith("27d1dd263")
    assert result(node, "eth_sendRawTransaction", [raw(golden)]) == GOLDEN_ID
    # trailing bytes are ignored; the id is of the re-serialised tx
    dup = send_error(node, raw(golden) + "abcdef")
    assert dup == {"code": -32603, "message": MSG_ALREADY_IN_POOL, "data": None}


def test_admission_errors(node: NodeProcess) -> None:
    tx = fresh()
    tampered = Transaction(
        tx.nonce,
        tx.sender,
        tx.recipient,
        tx.amount + 1,
        tx.gas_limit,
        tx.gas_price,
        b"",
        tx.signature,
    )
    assert send_error(node, tampered)["message"] == MSG_INVALID_SIGNATURE
    high_s = Transaction(
        tx.nonce,
        tx.sender,
        tx.recipient,
        tx.amount,
        tx.gas_limit,
        tx.gas_price,
        b"",
        tx.signature[:32]
        + (
            0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
            - int.from_bytes(tx.signature[32:], "big")
        ).to_bytes(32, "big"),
    )
    assert send_error(node, high_s)["message"] == MSG_INVALID_SIGNATURE
    rows = [
        (
            fresh(nonce=3),
            "Account not found and nonce is not zero (got nonce 3). "
            "New accounts must start with nonce 0.",
        ),
        (fresh(gas_price=0), MSG_NEW_ACCOUNT_GAS),
        (fresh(gas_limit=0), MSG_NEW_ACCOUNT_GAS),
        (
            fresh(gas_price=MAX_GAS_PRICE + 1),
            f"Gas price {MAX_GAS_PRICE + 1} exceeds maximum allowed {MAX_GAS_PRICE}",
        ),
        (
            fresh(gas_limit=MAX_GAS_LIMIT + 1),
            f"Gas limit {MAX_GAS_LIMIT + 1} exceeds maximum allowed {MAX_GAS_LIMIT}",
        ),
        # An unknown sender has no balance: a tx moving value could never apply.
        (fresh(amount=1), MSG_INSUFFICIENT_BALANCE),
    ]
    for bad, message in rows:
        assert send_error(node, bad) == {"code": -32602, "message": message, "data": None}
    assert result(node, "eth_sendRawTransaction", [raw(fresh(gas_price=MAX_GAS_PRICE))])


def test_known_sender_rules_and_confirmation(node: NodeProcess) -> None:
    sender = funded_sender(NETWORK, 0)
    balance = int(result(node, "eth_getBalance", ["0x" + sender.public_key.hex()]), 16)
    assert balance == 10**12
    too_much = sign_transaction(sender, RECIPIENT, balance + 1, 0, 0)
    assert send_error(node, too_much)["message"] == MSG_INSUFFICIENT_BALANCE
    wrong_nonce = sign_transaction(sender, RECIPIENT, 5, 21000, 10**9, nonce=1)
    assert send_error(node, wrong_nonce)["message"] == "Invalid nonce: expected 0, got 1"
    # a known sender has no gas rules
    pay = sign_transaction(sender, RECIPIENT, 5, 0, 0, nonce=0)
    tx_id = result(node, "eth_sendRawTransaction", [raw(pay)])
    found = wait_for(lambda: result(node, "eth_getTransactionByHash", [tx_id]), what="inclusion")
    assert found["hash"] == tx_id and found["value"] == "0x5" and found["nonce"] == "0x0"
    assert found["from"] == "0x" + sender.public_key.hex()
    assert result(node, "eth_getTransactionCount", ["0x" + sender.public_key.hex()]) == "0x1"
    after = int(result(node, "eth_getBalance", ["0x" + sender.public_key.hex()]), 16)
    assert after == balance - 5
    block = result(node, "eth_getBlockByNumber", [found["blockNumber"], True])
    assert block["transactions"][int(found["transactionIndex"], 16)] == found
    again = sign_transaction(sender, RECIPIENT, 5, 0, 0, nonce=0)
    assert send_error(node, again)["message"] == "Invalid nonce: expected 1, got 0"


# ---- tournament windows --------------------------------------------------------------------


def wait_phase(node: NodeProcess, phase: str) -> None:
    wait_for(
        lambda: result(node, "bitcell_getTournamentState")["phase"] == phase, what=f"{phase} phase"
    )


def test_commitment_and_reveal_only_in_their_windows(node: NodeProcess) -> None:
    commitment = [{"commitment": "0x" + "11" * 32, "ring_signature": "0xabcd"}]
    reveal = [GOOD_REVEAL]
    wait_phase(node, "commit")
    assert result(node, "bitcell_submitCommitment", commitment) == {"accepted": True}
    assert call(node, "bitcell_submitReveal", reveal)["error"] == {
        "code": -32000,
        "message": j.MSG_NOT_IN_REVEAL_PHASE,
        "data": None,
    }
    wait_phase(node, "reveal")
    assert result(node, "bitcell_submitReveal", reveal) == {"accepted": True}
    assert call(node, "bitcell_submitCommitment", commitment)["error"] == {
        "code": -32000,
        "message": j.MSG_NOT_IN_COMMIT_PHASE,
        "data": None,
    }


# ---- HTTP level ----------------------------------------------------------------------------


def test_http_level_refusals(node: NodeProcess) -> None:
    url = f"{node.rpc_url}/rpc"
    ok = b'{"jsonrpc":"2.0","method":"eth_blockNumber","id":1}'

    def send(body: bytes, content_type: str | None = "application/json") -> httpx.Response:
        headers = {} if content_type is None else {"Content-Type": content_type}
        return httpx.post(url, content=body, headers=headers, timeout=10, trust_env=False)

    for content_type in (None, "text/plain", "application/x-www-form-urlencoded"):
        response = send(ok, content_type)
        assert response.status_code == 415
        assert response.text == j.BODY_WRONG_CONTENT_TYPE
    assert send(ok, "application/json; charset=utf-8").status_code == 200
    response = send(b'{"jsonrpc":')
    assert response.status_code == 400 and response.text.startswith(j.BODY_INVALID_JSON_PREFIX)
    for body in (b"[" + ok + b"]", b"[]", b'{"method":"eth_blockNumber"}', b"42", b'"x"'):
        response = send(body)
        assert response.status_code == 422, body
        assert response.text.startswith(j.BODY_WRONG_SHAPE_PREFIX)
    big = b'{"jsonrpc":"2.0","method":"eth_blockNumber","params":["' + b"a" * j.MAX_BODY_BYTES
    response = send(big + b'"]}')
    assert response.status_code == 413
    assert response.text == "Failed to buffer the request body: length limit exceeded"
    assert httpx.post(f"{node.rpc_url}/", content=ok, trust_env=False).status_code == 404
    assert httpx.get(url, trust_env=False).status_code == 405


def test_health_on_rpc_and_metrics_ports(node: NodeProcess) -> None:
    for base in (node.rpc_url, node.metrics_url):
        response = httpx.get(f"{base}/health", trust_env=False)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert list(body) == ["status", "chain_height", "peer_count"]
        assert body["status"] == "ok" and body["peer_count"] == 0
        assert isinstance(body["chain_height"], int)


def scrape(node: NodeProcess) -> str:
    response = httpx.get(f"{node.metrics_url}/metrics", trust_env=False)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def test_metrics_catalogue(node: NodeProcess) -> None:
    text = scrape(node)
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    helps = dict(re.findall(r"^# HELP (\S+) (.+)$", text, re.M))
    for spec in NODE_METRICS:
        assert types[spec.name] == spec.type and helps[spec.name] == spec.help
    unlabelled = {
        line.split()[0] for line in text.splitlines() if line and not line.startswith("#")
    }
    node_names = {spec.name for spec in NODE_METRICS}
    assert node_names <= unlabelled
    for histogram in ("bitcell_block_propagation_seconds", "bitcell_rpc_request_duration_seconds"):
        assert types[histogram] == "histogram"
    assert "bitcell_rpc_latency_seconds" not in types  # one RPC latency series, by method
    assert all(name.startswith("bitcell_") for name in types)
    values = parse_prometheus(text)
    assert values["bitcell_sync_progress"] == 100
    assert values["bitcell_chain_height"] >= 1
    assert values['bitcell_rpc_request_duration_seconds_count{method="eth_blockNumber"}'] >= 1


def test_pending_txs_gauge_follows_the_pool(node: NodeProcess) -> None:
    def pending() -> tuple[float, int]:
        metric = parse_prometheus(scrape(node))["bitcell_pending_txs"]
        return metric, result(node, "bitcell_getPendingBlockInfo")["pendingTransactions"]

    before, info = pending()
    assert before == info
    # right after a block is built (round end = commit start) there is a round to spare
    wait_phase(node, "battle")
    wait_phase(node, "commit")
    before, info = pending()
    for _ in range(3):
        result(node, "eth_sendRawTransaction", [raw(fresh())])
    after, info = pending()
    assert after == info == before + 3
    pending_info = result(node, "bitcell_getPendingBlockInfo")
    assert int(pending_info["pending"], 16) == int(pending_info["confirmed"], 16) + 1
    rejected = parse_prometheus(scrape(node))["bitcell_txs_rejected_total"]
    send_error(node, fresh(gas_price=0))
    assert parse_prometheus(scrape(node))["bitcell_txs_rejected_total"] == rejected + 1


def test_battle_replay_is_deterministic(node: NodeProcess) -> None:
    first = result(node, "bitcell_getBattleReplay", [10])
    assert result(node, "bitcell_getBattleReplay", [10]) == first
    assert result(node, "bitcell_getBattleReplay", [2**64 - 1])["block_height"] == 2**64 - 1


def test_log_names_events(node: NodeProcess) -> None:
    text = node.log_text()
    assert re.search(r"INFO v: started node=v role=validator height=\d+", text)
    assert re.search(r"block produced height=\d+ hash=[0-9a-f]{12} proposer=v txs=\d+", text)
    assert " ERROR " not in text


# ---- bounded HTTP --------------------------------------------------------------------------


def padded_request(size: int) -> bytes:
    """A valid eth_blockNumber request of exactly ``size`` bytes."""
    head, tail = b'{"jsonrpc":"2.0","method":"eth_blockNumber","params":["', b'"],"id":1}'
    return head + b"a" * (size - len(head) - len(tail)) + tail


def test_one_body_limit_for_chunked_and_content_length(node: NodeProcess) -> None:
    url = f"{node.rpc_url}/rpc"
    headers = {"Content-Type": "application/json"}

    def send(body: bytes, chunked: bool) -> httpx.Response:
        content: Any = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
        return httpx.post(
            url, content=content if chunked else body, headers=headers, trust_env=False
        )

    for chunked in (False, True):
        assert send(padded_request(j.MAX_BODY_BYTES), chunked).status_code == 200
        over = send(padded_request(j.MAX_BODY_BYTES + 1), chunked)
        assert over.status_code == 413, chunked
        assert over.text == "Failed to buffer the request body: length limit exceeded"


def test_content_encoding_is_not_decoded_and_never_a_500(node: NodeProcess) -> None:
    url = f"{node.rpc_url}/rpc"
    ok = b'{"jsonrpc":"2.0","method":"eth_blockNumber","id":1}'
    for encoding in ("gzip", "deflate", "br", "x-unknown"):
        headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
        plain = httpx.post(url, content=ok, headers=headers, trust_env=False)
        assert plain.status_code == 200, encoding  # read as is, as axum without a decoder
        packed = httpx.post(url, content=gzip.compress(ok), headers=headers, trust_env=False)
        assert packed.status_code == 400 and packed.text.startswith(j.BODY_INVALID_JSON_PREFIX)


def test_an_id_out_of_f64_range_is_refused(node: NodeProcess) -> None:
    for number in ("1e400", "-1e400", "1" + "0" * 400 + ".5"):
        body = f'{{"jsonrpc":"2.0","method":"eth_blockNumber","id":{number}}}'.encode()
        response = httpx.post(
            f"{node.rpc_url}/rpc",
            content=body,
            headers={"Content-Type": "application/json"},
            trust_env=False,
        )
        assert response.status_code == 400, number
        assert response.text.startswith(j.BODY_INVALID_JSON_PREFIX)
        assert "out of range" in response.text


def test_slow_and_silent_connections_are_closed(node: NodeProcess) -> None:
    port = node.rpc_port

    async def held(partial: bytes) -> float:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(partial)
        start = time.monotonic()
        try:
            while await asyncio.wait_for(reader.read(65536), 30):
                pass
        finally:
            writer.close()
        return time.monotonic() - start

    async def all_three() -> list[float]:
        return list(
            await asyncio.gather(
                held(b""),
                held(b"POST /rpc HTTP/1.1\r\nHost: x\r\n"),
                held(
                    b"POST /rpc HTTP/1.1\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100\r\n\r\n{"
                ),
            )
        )

    silent_s, slow_header_s, slow_body_s = asyncio.run(all_three())
    assert silent_s < HEADER_TIMEOUT_S + 2 and slow_header_s < HEADER_TIMEOUT_S + 2
    assert slow_body_s < BODY_TIMEOUT_S + 2


def test_connections_beyond_the_cap_are_refused(node: NodeProcess) -> None:
    cap = RPC_LIMITS.max_connections

    async def flood() -> tuple[int, bytes]:
        held = [await asyncio.open_connection(HOST, node.rpc_port) for _ in range(cap)]
        try:
            await asyncio.sleep(0.3)
            reader, writer = await asyncio.open_connection(HOST, node.rpc_port)
            answer = await asyncio.wait_for(reader.read(65536), 5)
            writer.close()
            return len(held), answer
        finally:
            for _, held_writer in held:
                held_writer.close()

    opened, answer = asyncio.run(flood())
    assert opened == cap
    assert answer.startswith(b"HTTP/1.1 503 ")
    wait_for(lambda: httpx.get(f"{node.rpc_url}/health", trust_env=False).status_code, 10)


def test_malformed_http_is_a_400_and_one_warning(node: NodeProcess) -> None:
    def warnings() -> int:
        return node.log_text().count("malformed HTTP request from 127.0.0.1")

    before = warnings()
    for _ in range(5):
        with socket.create_connection((HOST, node.rpc_port), timeout=5) as sock:
            sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 400 ")
    time.sleep(0.2)
    assert warnings() - before <= 1 and warnings() >= 1
    text = node.log_text()
    assert "Traceback" not in text and " ERROR " not in text
