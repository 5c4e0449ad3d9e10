"""Throughput of the protocol library's hot paths, in operations per second on this machine.

Key generation; fresh key + sign + encode (the load test's per-tx work); verification; raw-tx
admission; 1000-tx block encode/decode. Median and min of ``--repeats`` runs, as Markdown.
Run: ``.venv/bin/python benchmarks/bench_protocol.py [--n 2000] [--repeats 5] [--seed 1]``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from bitcell_sim.protocol import (
    Block,
    KeyPair,
    Transaction,
    admit_raw_transaction,
    genesis_block,
    hexbytes,
    make_block,
    sign_transaction,
)


def rate(op: Callable[[int], None], n: int, repeats: int) -> tuple[float, float]:
    """Median and min ops/s of ``op(n)`` over ``repeats`` runs (one warm-up run first)."""
    op(max(1, n // 10))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        op(n)
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates), min(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="operations per run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    recipient = KeyPair.from_seed("recipient").public_key

    def keygen(n: int) -> None:
        for _ in range(n):
            KeyPair.generate(rng)

    def sign_fresh(n: int) -> None:
        for i in range(n):
            sign_transaction(KeyPair.generate(rng), recipient, 0, 21000, 1 + i).encode()

    txs = [
        sign_transaction(KeyPair.generate(rng), recipient, 0, 21000, 1 + i) for i in range(args.n)
    ]
    raws = [[hexbytes(tx.encode())] for tx in txs]

    def verify(n: int) -> None:
        for tx in txs[:n]:
            if not tx.verify_signature():
                raise AssertionError("benchmark transaction does not verify")

    def admit(n: int) -> None:
        for params in raws[:n]:
            admit_raw_transaction(params, lambda key: None)

    proposer = KeyPair.from_seed("bench-proposer")
    genesis = genesis_block("bench", 0)
    block = make_block(proposer, genesis.header, txs[:1000], bytes(32), 15)
    raw_block = block.encode()

    def block_encode(n: int) -> None:
        for _ in range(n):
            block.encode()

    def block_decode(n: int) -> None:
        for _ in range(n):
            Block.decode(raw_block)

    def tx_decode(n: int) -> None:
        for params in raws[:n]:
            Transaction.decode(bytes.fromhex(params[0][2:]))

    rows = [
        ("key generation (numpy Generator)", keygen, args.n),
        ("fresh key + sign + encode one tx", sign_fresh, args.n),
        ("verify one tx signature", verify, args.n),
        ("decode one raw tx (no verify)", tx_decode, args.n),
        ("admit one raw hex tx (decode+verify+rules)", admit, args.n),
        ("encode a 1000-tx block", block_encode, max(1, args.n // 100)),
        ("decode a 1000-tx block", block_decode, max(1, args.n // 100)),
    ]
    print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"n={args.n}, repeats={args.repeats}\n"
    )
    print("| operation | median ops/s | min ops/s |")
    print("|---|---:|---:|")
    for name, op, n in rows:
        median, low = rate(op, n, args.repeats)
        print(f"| {name} | {median:,.0f} | {low:,.0f} |")


if __name__ == "__main__":
    main()
