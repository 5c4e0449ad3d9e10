"""eth_sendRawTransaction admission: one row per error of FACTS §2.6, in the node's order, and
the devnet's one departure (an unknown sender moving value: "Insufficient balance")."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from bitcell_sim.errors import RpcError
from bitcell_sim.protocol.account import Account
from bitcell_sim.protocol.admission import (
    ALREADY_IN_POOL,
    MAX_GAS_LIMIT,
    MAX_GAS_PRICE,
    MSG_ALREADY_IN_POOL,
    MSG_INVALID_SIGNATURE,
    MSG_POOL_FULL,
    POOL_FULL,
    admit_raw_transaction,
    pool_error,
)
from bitcell_sim.protocol.errors import ProtocolError
from bitcell_sim.protocol.hexcodec import hexbytes
from bitcell_sim.protocol.keys import CURVE_ORDER, KeyPair
from bitcell_sim.protocol.transaction import Transaction, sign_transaction

SENDER = KeyPair.from_seed("test-seed")
TO = KeyPair.from_seed("recipient").public_key


def tx(**kw: Any) -> Transaction:
    args: dict[str, Any] = {"amount": 0, "gas_limit": 21000, "gas_price": 10**9}
    args.update(kw)
    return sign_transaction(SENDER, TO, **args)


def raw(t: Transaction) -> list[Any]:
    return [hexbytes(t.encode())]


def unknown(_key: bytes) -> Account | None:
    return None


def known(balance: int, nonce: int) -> Any:
    return lambda key: Account(balance, nonce) if key == SENDER.public_key else None


HIGH_S = replace(
    tx(),
    signature=tx().signature[:32]
    + (CURVE_ORDER - int.from_bytes(tx().signature[32:], "big")).to_bytes(32, "big"),
)
GOOD_RAW = tx().encode()

ROWS: list[tuple[str, Any, Any, str]] = [
    ("params missing", None, unknown, "Invalid params"),
    ("params not array", "0x00", unknown, "Params must be an array"),
    ("no argument", [], unknown, "Missing transaction data"),
    ("not a string", [123], unknown, "Transaction data must be a string"),
    ("bad hex", ["0xzz"], unknown, "Invalid hex encoding"),
    ("odd hex", ["0x0"], unknown, "Invalid hex encoding"),
    ("capital prefix", ["0X" + GOOD_RAW.hex()], unknown, "Invalid hex encoding"),
    (
        "empty",
        ["0x"],
        unknown,
        "Failed to deserialize transaction: io error: unexpected end of file",
    ),
    (
        "truncated",
        [hexbytes(GOOD_RAW[:150])],
        unknown,
        "Failed to deserialize transaction: io error: unexpected end of file",
    ),
    (
        "bad key length",
        [hexbytes(GOOD_RAW[:8] + b"\x20" + GOOD_RAW[9:])],
        unknown,
        "Failed to deserialize transaction: Invalid public key length",
    ),
    (
        "bad signature length",
        [hexbytes(GOOD_RAW[:122] + b"\x3f" + GOOD_RAW[123:])],
        unknown,
        "Failed to deserialize transaction: Invalid signature length",
    ),
    ("tampered", raw(replace(tx(), amount=1)), unknown, "Invalid transaction signature"),
    ("high S", raw(HIGH_S), unknown, "Invalid transaction signature"),
    (
        "invalid sender point",
        raw(replace(tx(), sender=b"\x02" + bytes(32))),
        unknown,
        "Invalid transaction signature",
    ),
    ("known: nonce low", raw(tx(nonce=2)), known(10**6, 3), "Invalid nonce: expected 3, got 2"),
    ("known: nonce high", raw(tx(nonce=4)), known(10**6, 3), "Invalid nonce: expected 3, got 4"),
    ("known: balance", raw(tx(amount=1001)), known(1000, 0), "Insufficient balance"),
    ("unknown: moves value", raw(tx(amount=1)), unknown, "Insufficient balance"),
    ("unknown: the golden vector", raw(tx(amount=1000)), unknown, "Insufficient balance"),
    (
        "unknown: gas checked before balance",
        raw(tx(amount=5, gas_limit=0)),
        unknown,
        "Transactions from new accounts require non-zero gas price and limit to prevent DoS "
        "attacks",
    ),
    (
        "unknown: nonce",
        raw(tx(nonce=1)),
        unknown,
        "Account not found and nonce is not zero (got nonce 1). "
        "New accounts must start with nonce 0.",
    ),
    (
        "unknown: zero gas price",
        raw(tx(gas_price=0)),
        unknown,
        "Transactions from new accounts require non-zero gas price and limit to prevent DoS "
        "attacks",
    ),
    (
        "unknown: zero gas limit",
        raw(tx(gas_limit=0)),
        unknown,
        "Transactions from new accounts require non-zero gas price and limit to prevent DoS "
        "attacks",
    ),
    (
        "unknown: gas price",
        raw(tx(gas_price=MAX_GAS_PRICE + 1)),
        unknown,
        "Gas price 10000000000001 exceeds maximum allowed 10000000000000",
    ),
    (
        "unknown: gas limit",
        raw(tx(gas_limit=MAX_GAS_LIMIT + 1)),
        unknown,
        "Gas limit 30000001 exceeds maximum allowed 30000000",
    ),
    (
        "unknown: price checked before limit",
        raw(tx(gas_price=MAX_GAS_PRICE + 1, gas_limit=MAX_GAS_LIMIT + 1)),
        unknown,
        "Gas price 10000000000001 exceeds maximum allowed 10000000000000",
    ),
    (
        "unknown: nonce checked before gas",
        raw(tx(nonce=5, gas_price=0)),
        unknown,
        "Account not found and nonce is not zero (got nonce 5). "
        "New accounts must start with nonce 0.",
    ),
]


@pytest.mark.parametrize(("name", "params", "lookup", "message"), ROWS, ids=[r[0] for r in ROWS])
def test_admission_errors(name: str, params: Any, lookup: Any, message: str) -> None:
    with pytest.raises(RpcError, match=re.escape(message)) as info:
        admit_raw_transaction(params, lookup)
    assert info.value.code == -32602
    assert info.value.message == message


@pytest.mark.parametrize(
    ("name", "t", "lookup"),
    [
        ("unknown sender, amount 0", tx(), unknown),
        ("golden, funded sender", tx(amount=1000), known(1000, 0)),
        (
            "unknown sender: limits inclusive",
            tx(gas_price=MAX_GAS_PRICE, gas_limit=MAX_GAS_LIMIT),
            unknown,
        ),
        (
            "known: exact balance, no gas rules",
            tx(amount=1000, nonce=3, gas_price=0),
            known(1000, 3),
        ),
    ],
)
def test_admitted(name: str, t: Transaction, lookup: Any) -> None:
    assert admit_raw_transaction(raw(t), lookup) == t


def test_prefixless_upper_hex_and_trailing_junk() -> None:
    t = tx()
    assert admit_raw_transaction([(t.encode() + b"junk").hex().upper()], unknown) == t


def test_the_signature_check_is_a_seam() -> None:
    t = tx()
    checked: list[Transaction] = []

    def accept(x: Transaction) -> bool:
        checked.append(x)
        return True

    assert admit_raw_transaction(raw(t), unknown, verify=accept) == t
    assert checked == [t]
    with pytest.raises(RpcError, match="Invalid transaction signature") as info:
        admit_raw_transaction(raw(t), unknown, verify=lambda x: False)
    assert (info.value.code, info.value.message) == (-32602, MSG_INVALID_SIGNATURE)


def test_pool_errors() -> None:
    full = pool_error(POOL_FULL)
    dup = pool_error(ALREADY_IN_POOL)
    assert (full.code, full.message) == (-32603, MSG_POOL_FULL)
    assert MSG_POOL_FULL == "Failed to add transaction to pool: Transaction pool full"
    assert (dup.code, dup.message) == (-32603, MSG_ALREADY_IN_POOL)
    assert MSG_ALREADY_IN_POOL == "Failed to add transaction to pool: Transaction already in pool"
    with pytest.raises(ProtocolError, match="unknown pool failure reason 'nope'"):
        pool_error("nope")
