"""Admission of ``eth_sendRawTransaction``: the node's checks in order, with its exact errors.

``admit_raw_transaction(params, lookup)`` runs hex → decode → signature → nonce/balance (known
sender) or nonce/gas/amount 0 (unknown sender: a value transfer gets the node's own -32602
"Insufficient balance", the devnet's one departure) and returns the ``Transaction`` or raises
``RpcError``. ``pool_error(POOL_FULL)`` / ``pool_error(ALREADY_IN_POOL)``: the -32603 answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bitcell_sim.errors import RpcError
from bitcell_sim.protocol.account import Account
from bitcell_sim.protocol.errors import DecodeError, ProtocolError
from bitcell_sim.protocol.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS
from bitcell_sim.protocol.params import raw_transaction_param
from bitcell_sim.protocol.transaction import Transaction

#: Limits applied to senders the node does not know yet.
MAX_GAS_PRICE = 10_000_000_000_000
MAX_GAS_LIMIT = 30_000_000
#: Pool capacity of the node (``TransactionPool::default()``); no eviction.
POOL_CAPACITY = 10_000

MSG_INVALID_SIGNATURE = "Invalid transaction signature"
MSG_INSUFFICIENT_BALANCE = "Insufficient balance"
MSG_NEW_ACCOUNT_GAS = (
    "Transactions from new accounts require non-zero gas price and limit to prevent DoS attacks"
)
POOL_FULL = "Transaction pool full"
ALREADY_IN_POOL = "Transaction already in pool"
#: The JSON-RPC code of every pool refusal (full, or already in).
POOL_ERROR_CODE = INTERNAL_ERROR
MSG_POOL_FULL = f"Failed to add transaction to pool: {POOL_FULL}"
MSG_ALREADY_IN_POOL = f"Failed to add transaction to pool: {ALREADY_IN_POOL}"

#: Returns the confirmed account of a sender key, or None if the node has never seen it.
AccountLookup = Callable[[bytes], Account | None]
#: True if a transaction's signature is valid (a node may answer from a cache).
SignatureCheck = Callable[[Transaction], bool]


def deserialize_error(reason: str) -> RpcError:
    return RpcError(INVALID_PARAMS, f"Failed to deserialize transaction: {reason}")


def decode_raw_transaction(
    raw: bytes, *, verify: SignatureCheck = Transaction.verify_signature
) -> Transaction:
    """Decode and signature-check raw bytes (steps 2-3); raises the node's -32602 errors."""
    try:
        tx = Transaction.decode(raw)
    except DecodeError as exc:
        raise deserialize_error(str(exc)) from None
    if not verify(tx):
        raise RpcError(INVALID_PARAMS, MSG_INVALID_SIGNATURE)
    return tx


def check_account_rules(tx: Transaction, account: Account | None) -> None:
    """Step 4: a known sender needs its confirmed nonce and the amount; a new one nonce 0,
    sane gas and (unlike the real node, which checks no balance there) an amount of 0."""
    if account is not None:
        if tx.nonce != account.nonce:
            raise RpcError(
                INVALID_PARAMS, f"Invalid nonce: expected {account.nonce}, got {tx.nonce}"
            )
        if tx.amount > account.balance:
            raise RpcError(INVALID_PARAMS, MSG_INSUFFICIENT_BALANCE)
        return
    if tx.nonce != 0:
        raise RpcError(
            INVALID_PARAMS,
            f"Account not found and nonce is not zero (got nonce {tx.nonce}). "
            "New accounts must start with nonce 0.",
        )
    if tx.gas_price == 0 or tx.gas_limit == 0:
        raise RpcError(INVALID_PARAMS, MSG_NEW_ACCOUNT_GAS)
    if tx.gas_price > MAX_GAS_PRICE:
        raise RpcError(
            INVALID_PARAMS,
            f"Gas price {tx.gas_price} exceeds maximum allowed {MAX_GAS_PRICE}",
        )
    if tx.gas_limit > MAX_GAS_LIMIT:
        raise RpcError(
            INVALID_PARAMS,
            f"Gas limit {tx.gas_limit} exceeds maximum allowed {MAX_GAS_LIMIT}",
        )
    if tx.amount > 0:
        # A new account has no balance: such a tx could never apply (it would only occupy the
        # pool for good, as it does on the real node).
        raise RpcError(INVALID_PARAMS, MSG_INSUFFICIENT_BALANCE)


def admit_raw_transaction(
    params: Any, lookup: AccountLookup, *, verify: SignatureCheck = Transaction.verify_signature
) -> Transaction:
    """All admission checks before the pool, in the node's order; returns the decoded tx.
    ``verify`` checks the signature (a node passes its signature cache)."""
    raw = raw_transaction_param(params)
    tx = decode_raw_transaction(raw, verify=verify)
    check_account_rules(tx, lookup(tx.sender))
    return tx


def pool_error(reason: str) -> RpcError:
    """The -32603 answer when the pool refuses a tx (``POOL_FULL`` or ``ALREADY_IN_POOL``)."""
    if reason not in (POOL_FULL, ALREADY_IN_POOL):
        raise ProtocolError(f"unknown pool failure reason {reason!r}")
    return RpcError(POOL_ERROR_CODE, f"Failed to add transaction to pool: {reason}")
