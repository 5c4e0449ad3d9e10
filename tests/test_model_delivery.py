"""Hand-checkable delivery: two nodes, a fixed 100 ms one-way latency, no jitter.

A block reaches the other node exactly at production + the producer's own import + frame size /
bandwidth + 100 ms + the receiver's import, each import block_import + txs x
block_import_per_tx (both CPUs are otherwise idle: tx_validate is 0).
"""

from __future__ import annotations

import textwrap

import pytest

from bitcell_sim.model import simulate
from bitcell_sim.model.wire import FRAME_OVERHEAD_BYTES, wire_sizes
from bitcell_sim.protocol import block as protocol_block
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.transaction import sign_transaction
from bitcell_sim.topology import Topology, parse_topology

BANDWIDTH_BPS = 10e6
LATENCY_S = 0.100
IMPORT_PER_TX_S = 50e-6
IMPORT_BLOCK_S = 1e-3
BUILD_PER_TX_S = 30e-6
BUILD_BLOCK_S = 2e-3


def two_nodes(tps: float) -> Topology:
    return parse_topology(
        textwrap.dedent(
            f"""
            general: {{name: pair, seed: 3, duration: 62 s}}
            regions:
              west: {{rtt: {{west: 2 ms, east: 200 ms}}}}
              east: {{rtt: {{east: 2 ms}}}}
            links: {{bandwidth: 10 Mbit, jitter: {{distribution: none}}}}
            nodes:
              a: {{region: west, role: validator}}
              b: {{region: east, role: full}}
            protocol:
              commit: 1 s
              reveal: 1 s
              battle: 1 s
              processing:
                tx_validate: 0 us
                block_import_per_tx: 50 us
                block_import: 1 ms
                block_build_per_tx: 30 us
                block_build: 2 ms
            workload: {{tps: {tps}, arrival: constant, region_weights: {{west: 1, east: 0}}}}
            """
        )
    )


@pytest.mark.parametrize("tps", [0, 7])
def test_block_arrives_after_build_import_size_over_bandwidth_latency_import(tps: float) -> None:
    result = simulate(two_nodes(tps))
    blocks = result.tables["blocks"].to_pylist()
    arrivals = {
        (row["block_hash"], row["node"]): row["arrival_s"]
        for row in result.tables["block_arrivals"].to_pylist()
    }
    sizes = wire_sizes(194)
    assert len(blocks) == 20  # one block every 3 s: rounds end at 3, 6, ..., 60 s
    for block in blocks:
        assert block["producer"] == "a"
        txs = block["tx_count"]
        import_s = IMPORT_BLOCK_S + txs * IMPORT_PER_TX_S
        # The producer holds its block once it has built and imported it, and floods it then.
        held_s = block["produced_s"] + BUILD_BLOCK_S + txs * BUILD_PER_TX_S + import_s
        assert arrivals[(block["block_hash"], "a")] == pytest.approx(held_s, abs=1e-12)
        frame_bytes = block["size_bytes"] + FRAME_OVERHEAD_BYTES
        assert block["size_bytes"] == sizes.block_bytes(txs)
        expected = held_s + frame_bytes * 8 / BANDWIDTH_BPS + LATENCY_S + import_s
        assert arrivals[(block["block_hash"], "b")] == pytest.approx(expected, abs=1e-12)
    if tps:
        # 7 TPS at node a, one every 1/7 s from t=0: a tx submitted at the very instant a
        # block is built is in it, so the first block holds 22 txs and every other one 21.
        assert [b["tx_count"] for b in blocks] == [22] + [21] * (len(blocks) - 1)


def test_block_size_matches_the_protocol_encoding() -> None:
    key = KeyPair.from_seed("sender")
    to = KeyPair.from_seed("receiver").public_key
    txs = [
        sign_transaction(key, to, amount=1, gas_limit=21000, gas_price=1, nonce=i) for i in range(3)
    ]
    genesis = protocol_block.genesis_block("sizes", 0)
    real = protocol_block.make_block(key, genesis.header, txs, bytes(32), 1)
    assert wire_sizes(txs[0].size_bytes).block_bytes(3) == real.size_bytes


def test_added_latency_on_a_two_node_region_slows_only_its_boundary_links() -> None:
    """+300 ms on region west (a1, a2): blocks from a1 reach a2 as before, b 300 ms later."""
    yaml_text = textwrap.dedent(
        """
        general: {name: trio, seed: 3, duration: 31 s}
        regions:
          west: {rtt: {west: 4 ms, east: 200 ms}}
          east: {rtt: {east: 2 ms}}
        links: {bandwidth: 10 Mbit, jitter: {distribution: none}}
        nodes:
          a1: {region: west, role: validator}
          a2: {region: west, role: full}
          b: {region: east, role: full}
        protocol: {commit: 1 s, reveal: 1 s, battle: 1 s}
        workload: {tps: 0}
        """
    )
    slowed = yaml_text + textwrap.dedent(
        """
        faults:
          - {kind: added_latency, target: west, latency: 300 ms, start: 10 s, duration: 12 s}
        """
    )

    def arrivals(text: str) -> dict[tuple[float, str], float]:
        tables = simulate(parse_topology(text)).tables
        produced = {b["block_hash"]: b["produced_s"] for b in tables["blocks"].to_pylist()}
        return {
            (produced[row["block_hash"]], row["node"]): row["arrival_s"]
            for row in tables["block_arrivals"].to_pylist()
        }

    before, after = arrivals(yaml_text), arrivals(slowed)
    assert before.keys() == after.keys()
    in_window = 0
    for (produced_s, node), arrival_s in before.items():
        delta_s = after[(produced_s, node)] - arrival_s
        if node == "b" and 10.0 <= produced_s < 22.0:
            assert delta_s == pytest.approx(0.300, abs=1e-9)
            in_window += 1
        else:
            assert delta_s == pytest.approx(0.0, abs=1e-9), (produced_s, node)
    assert in_window == 4  # blocks of the rounds ending at 12, 15, 18 and 21 s
