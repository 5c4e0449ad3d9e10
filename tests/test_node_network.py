"""Three real node processes wired directly: gossip, tournament and inclusion on every node.

Two validators and a full node peer with each other's P2P ports; a transaction sent to any of
them ends up in the same block on all three, with the state changes of PROTOCOL.md §2.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bitcell_sim.devnet.rtt import parse_peer_rtts
from bitcell_sim.errors import RpcError
from bitcell_sim.node.harness import LocalNet, wait_for
from bitcell_sim.protocol.identity import funded_sender, node_keypair
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.metrics import parse_prometheus
from bitcell_sim.protocol.rpc_client import RpcClient
from bitcell_sim.protocol.transaction import sign_transaction

pytestmark = [pytest.mark.real, pytest.mark.timeout(120)]

NETWORK = "nettest"
GOLDEN = KeyPair.from_seed("test-seed")
RECIPIENT = KeyPair.from_seed("recipient").public_key
GOLDEN_ID = "0x746f184b90bdbfc41b8d46dcd311ed75fd44131029190c2cf4e3dbb6b6d409ed"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    roles = {"v1": "validator", "v2": "validator", "f": "full"}
    with LocalNet(tmp_path_factory.mktemp("net"), roles, name=NETWORK, phase_s=0.4) as net:
        net.start()
        yield net


@pytest.fixture(scope="module")
def clients(net: LocalNet) -> Iterator[dict[str, RpcClient]]:
    out = {name: RpcClient(node.rpc_url) for name, node in net.nodes.items()}
    yield out
    for client in out.values():
        client.close()


def included_everywhere(clients: dict[str, RpcClient], tx_id: str) -> dict[str, Any] | None:
    found = [c.get_transaction_by_hash(tx_id) for c in clients.values()]
    if all(found) and len({f["blockHash"] for f in found if f}) == 1:
        return found[0]
    return None


def test_nodes_peer_with_each_other(net: LocalNet, clients: dict[str, RpcClient]) -> None:
    wait_for(lambda: all(c.get_peer_count() == 2 for c in clients.values()), what="peering")
    for node in net.nodes.values():
        health = httpx.get(f"{node.metrics_url}/health", trust_env=False).json()
        assert health["peer_count"] == 2


def test_tx_sent_to_one_node_is_in_the_same_block_everywhere(
    clients: dict[str, RpcClient],
) -> None:
    sender = funded_sender(NETWORK, 0)
    # Fund the golden vector's sender through the full node (which never produces blocks).
    fund = sign_transaction(sender, GOLDEN.public_key, 10**6, 21000, 10**9, nonce=0)
    fund_id = clients["f"].send_raw_transaction(fund)
    wait_for(lambda: included_everywhere(clients, fund_id), what="funding tx on all nodes")
    for client in clients.values():
        wait_for(lambda c=client: c.get_balance(GOLDEN.public_key) == 10**6, what="balance")
        assert client.get_transaction_count(sender.public_key) == 1
    golden = sign_transaction(GOLDEN, RECIPIENT, 1000, 21000, 1_000_000_000, nonce=0)
    assert clients["v2"].send_raw_transaction(golden) == GOLDEN_ID
    found = wait_for(lambda: included_everywhere(clients, GOLDEN_ID), what="golden tx")
    assert found["from"] == "0x" + GOLDEN.public_key.hex() and found["value"] == "0x3e8"
    for client in clients.values():
        wait_for(lambda c=client: c.get_balance(RECIPIENT) == 1000, what="recipient balance")
        assert client.get_balance(GOLDEN.public_key) == 10**6 - 1000
        assert client.get_transaction_count(GOLDEN.public_key) == 1
    again = sign_transaction(GOLDEN, RECIPIENT, 1, 21000, 10**9, nonce=0)
    with pytest.raises(RpcError, match=r"^-32602: Invalid nonce: expected 1, got 0$"):
        clients["v1"].send_raw_transaction(again)


def test_chains_agree_and_only_validators_propose(clients: dict[str, RpcClient]) -> None:
    height = min(c.block_number() for c in clients.values())
    assert height >= 2
    validators = {"0x" + node_keypair(NETWORK, v).public_key.hex() for v in ("v1", "v2")}
    for h in range(1, height + 1):
        blocks = [c.get_block_by_number(h) for c in clients.values()]
        assert len({b["hash"] for b in blocks if b}) == 1
        assert blocks[0] is not None and blocks[0]["miner"] in validators


def test_metrics_count_real_traffic(net: LocalNet) -> None:
    full = parse_prometheus(httpx.get(f"{net.nodes['f'].metrics_url}/metrics").text)
    assert full["bitcell_peer_count"] == full["bitcell_dht_peer_count"] == 2
    assert full["bitcell_bytes_received_total"] > 0 and full["bitcell_messages_sent_total"] > 0
    assert full["bitcell_block_propagation_seconds_count"] >= 1
    assert full["bitcell_txs_processed_total"] >= 2
    assert full["bitcell_active_miners"] == 2
    assert full["bitcell_sync_progress"] == 100
    # Wired directly (no emulator): each node times its Pings to both peers in well under 50 ms.
    rtts = wait_for(
        lambda: parse_peer_rtts(httpx.get(f"{net.nodes['f'].metrics_url}/metrics").text),
        what="peer RTT samples",
    )
    assert set(rtts) == {"v1", "v2"}
    assert all(r.samples >= 1 and 0 < r.min_s <= r.ewma_s < 0.050 for r in rtts.values()), rtts
    text = net.nodes["f"].log_text()
    assert re.search(r"block imported height=\d+ .* via=gossip from=v[12] .*delay_s=", text)
    assert "block produced" not in text


def test_line_topology_relays_txs_and_blocks(tmp_path: Path) -> None:
    # a - b - c: only a produces; c's tx must reach a through b, a's blocks reach c through b
    roles = {"a": "validator", "b": "full", "c": "full"}
    edges = [("a", "b"), ("b", "c")]
    with LocalNet(tmp_path, roles, name="linetest", phase_s=0.3, edges=edges) as net:
        net.start()
        a, c = RpcClient(net.nodes["a"].rpc_url), RpcClient(net.nodes["c"].rpc_url)
        assert c.get_peer_count() <= 1
        sender = funded_sender("linetest", 3)
        tx_id = c.send_raw_transaction(sign_transaction(sender, RECIPIENT, 9, 21000, 10**9))
        found = wait_for(lambda: c.get_transaction_by_hash(tx_id), what="tx relayed and included")
        assert a.get_transaction_by_hash(tx_id) == found
        assert found["blockHash"] == a.get_block_by_number(int(found["blockNumber"], 16))["hash"]
        a.close()
        c.close()
