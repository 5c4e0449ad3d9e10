"""Fork choice on real processes: two validators build separate chains, then meet.

Both start unpeered, so each wins every round of its own view and their chains fork from
genesis, each including a different transaction. Restarted with each other as peers, they
converge on one tip (longest chain, ties to the lower hash); the loser's orphaned transaction
goes back to its pool and ends up in the common chain: nothing accepted is lost.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import httpx
import pytest

from bitcell_sim.node.harness import HOST, LocalNet, wait_for
from bitcell_sim.protocol.identity import funded_sender
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.metrics import parse_prometheus
from bitcell_sim.protocol.rpc_client import RpcClient
from bitcell_sim.protocol.transaction import sign_transaction

pytestmark = [pytest.mark.real, pytest.mark.timeout(120)]

NETWORK = "forktest"


def test_partitioned_validators_converge_and_lose_no_tx(tmp_path: Path) -> None:
    roles = {"a": "validator", "b": "validator"}
    with LocalNet(tmp_path, roles, name=NETWORK, phase_s=0.3, peers={}) as net:
        net.start()
        a, b = RpcClient(net.nodes["a"].rpc_url), RpcClient(net.nodes["b"].rpc_url)
        to = KeyPair.from_seed("fork-recipient").public_key
        tx_a = a.send_raw_transaction(sign_transaction(funded_sender(NETWORK, 0), to, 10, 1, 1))
        tx_b = b.send_raw_transaction(sign_transaction(funded_sender(NETWORK, 1), to, 20, 1, 1))
        wait_for(lambda: a.get_transaction_by_hash(tx_a), what="tx_a on a")
        wait_for(lambda: b.get_transaction_by_hash(tx_b), what="tx_b on b")
        wait_for(lambda: min(a.block_number(), b.block_number()) >= 3, what="two chains")
        assert a.get_block_by_number(1)["hash"] != b.get_block_by_number(1)["hash"]
        assert a.get_transaction_by_hash(tx_b) is None and b.get_transaction_by_hash(tx_a) is None

        for name in ("a", "b"):
            net.nodes[name].signal(signal.SIGTERM)
            assert net.nodes[name].wait_exit(5) == 0
        net.write_config("a", {"b": f"{HOST}:{net.ports['b'][1]}"})
        net.write_config("b", {"a": f"{HOST}:{net.ports['a'][1]}"})
        net.start()

        def converged() -> bool:
            h = min(a.block_number(), b.block_number())
            return h >= 1 and a.get_block_by_number(h)["hash"] == b.get_block_by_number(h)["hash"]

        wait_for(converged, what="one chain")
        for tx_id in (tx_a, tx_b):
            for client in (a, b):
                wait_for(lambda c=client, t=tx_id: c.get_transaction_by_hash(t), what=tx_id)
            assert (
                a.get_transaction_by_hash(tx_id)["blockHash"]
                == b.get_transaction_by_hash(tx_id)["blockHash"]
            )
        assert a.get_balance(to) == b.get_balance(to) == 30
        logs = {name: net.nodes[name].log_text() for name in roles}
        reorged = [name for name, text in logs.items() if re.search(r"reorg depth=\d+", text)]
        assert reorged, "one side must have switched chains"
        loser = reorged[0]
        assert re.search(r"reorg depth=\d+ .* returned_txs=1", logs[loser])
        metrics = parse_prometheus(httpx.get(f"{net.nodes[loser].metrics_url}/metrics").text)
        assert metrics["bitcell_reorgs_total"] >= 1
        for node in net.nodes.values():
            # each tx counted once, though the loser saw its own tx twice
            text = httpx.get(f"{node.metrics_url}/metrics").text
            assert parse_prometheus(text)["bitcell_txs_processed_total"] == 2
        a.close()
        b.close()
