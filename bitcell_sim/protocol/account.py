"""Account state of the devnet: balances, nonces, the state root and the state transition.

``Account`` is (balance, nonce); ``state_root`` is SHA-256 over accounts sorted by key (key ‖
balance LE ‖ nonce LE), zeros when empty, so every node agrees. ``apply_transaction`` and
``apply_block`` are the intended transition (debit, nonce+1, credit, then ``block_reward``).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass

from bitcell_sim.protocol.transaction import Transaction

INITIAL_BLOCK_REWARD = 5_000_000_000
HALVING_INTERVAL_BLOCKS = 210_000
_U64_MAX = (1 << 64) - 1
_ENTRY = struct.Struct("<QQ")


@dataclass(frozen=True, slots=True)
class Account:
    """An account's confirmed ``balance`` (units) and ``nonce`` (txs applied from it)."""

    balance: int = 0
    nonce: int = 0


def state_root(accounts: Mapping[bytes, Account]) -> bytes:
    """SHA-256 of key ‖ balance LE ‖ nonce LE over keys in byte order; zeros if empty."""
    if not accounts:
        return bytes(32)
    h = hashlib.sha256()
    for key in sorted(accounts):
        account = accounts[key]
        h.update(key)
        h.update(_ENTRY.pack(account.balance, account.nonce))
    return h.digest()


def block_reward(height: int) -> int:
    """The proposer's reward at ``height``: 50·10^8 units halved every 210,000 blocks."""
    halvings = height // HALVING_INTERVAL_BLOCKS
    return INITIAL_BLOCK_REWARD >> halvings if halvings < 64 else 0


def apply_transaction(accounts: MutableMapping[bytes, Account], tx: Transaction) -> bool:
    """Apply ``tx`` in place if its nonce is the sender's and it can pay; return whether it did.

    A transaction that cannot apply is skipped, as the node skips it (it stays in its block).
    No gas is charged: the node charges none.
    """
    sender = accounts.get(tx.sender, Account())
    if tx.nonce != sender.nonce or tx.amount > sender.balance or sender.nonce == _U64_MAX:
        return False
    if tx.recipient == tx.sender:
        accounts[tx.sender] = Account(sender.balance, sender.nonce + 1)
        return True
    recipient = accounts.get(tx.recipient, Account())
    if recipient.balance + tx.amount > _U64_MAX:
        return False
    accounts[tx.sender] = Account(sender.balance - tx.amount, sender.nonce + 1)
    accounts[tx.recipient] = Account(recipient.balance + tx.amount, recipient.nonce)
    return True


def apply_block(
    accounts: MutableMapping[bytes, Account],
    transactions: Iterable[Transaction],
    proposer: bytes,
    height: int,
) -> list[bool]:
    """Apply a block's transactions in order, then credit the reward; one flag per tx."""
    applied = [apply_transaction(accounts, tx) for tx in transactions]
    reward = block_reward(height)
    if reward:
        current = accounts.get(proposer, Account())
        accounts[proposer] = Account(min(current.balance + reward, _U64_MAX), current.nonce)
    return applied
