"""Account state of the devnet: balances, nonces, the state root and the state transition.

``Account`` is (balance, nonce); ``state_root`` is the root of a 16-ary Merkle tree over the
accounts, each in the leaf named by bytes 1-2 of its key (a change re-hashes one path, whatever
the number of accounts), zeros when empty. ``apply_transaction`` and ``apply_block`` are the
intended transition (debit, nonce+1, credit, then ``block_reward``).
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


#: Leaves of the state tree: one per value of bytes 1-2 of a key (byte 0 of a compressed
#: point is only its parity); a 16-ary tree over them has STATE_TREE_DEPTH levels.
STATE_LEAVES = 1 << 16
STATE_TREE_DEPTH = 4
EMPTY_DIGEST = bytes(32)
_LEAF_TAG = b"\x00"
_NODE_TAG = b"\x01"


def state_leaf(key: bytes) -> int:
    """The leaf of the state tree that holds ``key``'s account."""
    return int.from_bytes(key[1:3], "big")


def account_entry(key: bytes, account: Account) -> bytes:
    """What the state tree hashes of one account: key ‖ balance LE ‖ nonce LE (49 bytes)."""
    return key + _ENTRY.pack(account.balance, account.nonce)


def leaf_digest(entries: Iterable[bytes]) -> bytes:
    """SHA-256(0x00 ‖ the leaf's entries in key order), or zeros for an empty leaf."""
    body = b"".join(entries)
    return hashlib.sha256(_LEAF_TAG + body).digest() if body else EMPTY_DIGEST


def node_digest(children: Iterable[bytes]) -> bytes:
    """SHA-256(0x01 ‖ the 16 child digests), or zeros if every child is empty."""
    body = b"".join(children)
    return EMPTY_DIGEST if body == EMPTY_DIGEST * 16 else hashlib.sha256(_NODE_TAG + body).digest()


def tree_root(leaves: Mapping[int, bytes]) -> bytes:
    """The root over ``leaves`` (leaf index -> digest; absent leaves are empty)."""
    level = {i: d for i, d in leaves.items() if d != EMPTY_DIGEST}
    for _ in range(STATE_TREE_DEPTH):
        parents = {i >> 4 for i in level}
        level = {
            p: d
            for p in parents
            if (d := node_digest(level.get((p << 4) | c, EMPTY_DIGEST) for c in range(16)))
            != EMPTY_DIGEST
        }
    return level.get(0, EMPTY_DIGEST)


def state_root(accounts: Mapping[bytes, Account]) -> bytes:
    """The state tree's root over ``accounts`` (see the module docstring); zeros if empty."""
    by_leaf: dict[int, list[bytes]] = {}
    for key in sorted(accounts):
        by_leaf.setdefault(state_leaf(key), []).append(account_entry(key, accounts[key]))
    return tree_root({i: leaf_digest(entries) for i, entries in by_leaf.items()})


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
