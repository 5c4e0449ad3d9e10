"""The BitCell block: header, body, bincode, hash, proposer signature, validation, JSON views.

``BlockHeader`` hashes to SHA-256(bincode(header)); ``Block`` adds txs, battle proofs, the
signature, finality votes and status. ``make_block`` builds a signed child, ``validate_block``
checks one against its parent, ``genesis_block`` is the devnet's shared genesis, and
``block_json``/``transaction_json`` are the node's JSON-RPC objects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from bitcell_sim.protocol import account, keys, vrf
from bitcell_sim.protocol.account import Account
from bitcell_sim.protocol.bincode import (
    HASH_SIZE_BYTES,
    PUBLIC_KEY_SIZE_BYTES,
    Reader,
    Writer,
    write_public_key,
    write_signature,
)
from bitcell_sim.protocol.errors import DecodeError, ProtocolError
from bitcell_sim.protocol.hexcodec import hexbytes, quantity
from bitcell_sim.protocol.transaction import Transaction

#: ``MAX_TXS_PER_BLOCK`` of the node.
MAX_TXS_PER_BLOCK = 1000

SHA3_UNCLES = "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"
RECEIPTS_ROOT = "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"
LOGS_BLOOM = "0x" + "00" * 256
GAS_LIMIT = "0x1fffffffffffff"

_U64_MAX = (1 << 64) - 1
ZERO_HASH = bytes(HASH_SIZE_BYTES)


class VoteType(IntEnum):
    PREVOTE = 0
    PRECOMMIT = 1


class FinalityStatus(IntEnum):
    PENDING = 0
    PREVOTED = 1
    FINALIZED = 2


def _check_len(name: str, value: bytes, size: int) -> None:
    if len(value) != size:
        raise ProtocolError(f"{name} must be {size} bytes, got {len(value)}")


def _check_u64(name: str, value: int) -> None:
    if not 0 <= value <= _U64_MAX:
        raise ProtocolError(f"{name}={value} is not a u64")


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """Header fields in encoding order; ``timestamp`` is Unix seconds."""

    height: int
    prev_hash: bytes
    tx_root: bytes
    state_root: bytes
    timestamp: int
    proposer: bytes
    vrf_output: bytes
    vrf_proof: bytes
    work: int

    def __post_init__(self) -> None:
        for name in ("height", "timestamp", "work"):
            _check_u64(name, getattr(self, name))
        for name in ("prev_hash", "tx_root", "state_root", "vrf_output"):
            _check_len(name, getattr(self, name), HASH_SIZE_BYTES)
        _check_len("proposer", self.proposer, PUBLIC_KEY_SIZE_BYTES)

    def write(self, w: Writer) -> Writer:
        w.u64(self.height).raw(self.prev_hash).raw(self.tx_root).raw(self.state_root)
        w.u64(self.timestamp)
        write_public_key(w, self.proposer)
        w.raw(self.vrf_output).var_bytes(self.vrf_proof).u64(self.work)
        return w

    @classmethod
    def read(cls, r: Reader) -> BlockHeader:
        return cls(
            height=r.u64(),
            prev_hash=r.hash32(),
            tx_root=r.hash32(),
            state_root=r.hash32(),
            timestamp=r.u64(),
            proposer=r.public_key(),
            vrf_output=r.hash32(),
            vrf_proof=r.var_bytes(),
            work=r.u64(),
        )

    def encode(self) -> bytes:
        return self.write(Writer()).getvalue()

    def hash(self) -> bytes:
        """The block hash: SHA-256(bincode(header))."""
        return hashlib.sha256(self.encode()).digest()


@dataclass(frozen=True, slots=True)
class BattleProof:
    """One tournament battle (always empty on the devnet; decoded for real blocks)."""

    participant_a: bytes
    participant_b: bytes
    winner: bytes
    proof: bytes
    public_inputs: bytes

    def write(self, w: Writer) -> Writer:
        for key in (self.participant_a, self.participant_b, self.winner):
            write_public_key(w, key)
        return w.var_bytes(self.proof).var_bytes(self.public_inputs)

    @classmethod
    def read(cls, r: Reader) -> BattleProof:
        return cls(r.public_key(), r.public_key(), r.public_key(), r.var_bytes(), r.var_bytes())


@dataclass(frozen=True, slots=True)
class FinalityVote:
    """A finality-gadget vote (the node never produces one; decoded for completeness)."""

    block_hash: bytes
    block_height: int
    vote_type: VoteType
    round: int
    validator: bytes
    signature: bytes

    def write(self, w: Writer) -> Writer:
        w.raw(self.block_hash).u64(self.block_height).variant(int(self.vote_type))
        w.u64(self.round)
        write_public_key(w, self.validator)
        return write_signature(w, self.signature)

    @classmethod
    def read(cls, r: Reader) -> FinalityVote:
        return cls(
            block_hash=r.hash32(),
            block_height=r.u64(),
            vote_type=VoteType(r.variant(len(VoteType))),
            round=r.u64(),
            validator=r.public_key(),
            signature=r.signature(),
        )


def _read_seq(r: Reader) -> int:
    count = r.seq_len()
    # Every element takes at least one byte, so a larger count is a truncated input.
    if count > r.remaining:
        raise DecodeError("io error: unexpected end of file")
    return count


@dataclass(frozen=True, slots=True)
class Block:
    """A full block; ``signature`` is the proposer's over ``header.hash()``."""

    header: BlockHeader
    transactions: tuple[Transaction, ...]
    signature: bytes
    battle_proofs: tuple[BattleProof, ...] = ()
    finality_votes: tuple[FinalityVote, ...] = ()
    finality_status: FinalityStatus = FinalityStatus.PENDING
    _hash: bytes = field(default=b"", init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_len("block signature", self.signature, keys.SIGNATURE_SIZE_BYTES)
        # The hash is read on every gossip and index lookup; compute it once.
        object.__setattr__(self, "_hash", self.header.hash())

    @property
    def height(self) -> int:
        return self.header.height

    def hash(self) -> bytes:
        return self._hash

    def write(self, w: Writer) -> Writer:
        self.header.write(w)
        w.seq_len(len(self.transactions))
        for tx in self.transactions:
            w.raw(tx.encode())
        w.seq_len(len(self.battle_proofs))
        for proof in self.battle_proofs:
            proof.write(w)
        write_signature(w, self.signature)
        w.seq_len(len(self.finality_votes))
        for vote in self.finality_votes:
            vote.write(w)
        return w.variant(int(self.finality_status))

    @classmethod
    def read(cls, r: Reader) -> Block:
        header = BlockHeader.read(r)
        txs = tuple(Transaction.read(r) for _ in range(_read_seq(r)))
        proofs = tuple(BattleProof.read(r) for _ in range(_read_seq(r)))
        signature = r.signature()
        votes = tuple(FinalityVote.read(r) for _ in range(_read_seq(r)))
        status = FinalityStatus(r.variant(len(FinalityStatus)))
        return cls(header, txs, signature, proofs, votes, status)

    def encode(self) -> bytes:
        return self.write(Writer()).getvalue()

    @classmethod
    def decode(cls, raw: bytes) -> Block:
        """Decode a block; trailing bytes are ignored, as by bincode."""
        return cls.read(Reader(raw))

    @property
    def size_bytes(self) -> int:
        """bincode ``serialized_size`` of the whole block (the JSON ``size`` field)."""
        return len(self.encode())

    def verify_signature(self) -> bool:
        return keys.verify(self.header.proposer, self._hash, self.signature)


def tx_root(transactions: Sequence[Transaction]) -> bytes:
    """SHA-256 of the concatenated tx ids, or 32 zero bytes for none (not a Merkle tree)."""
    if not transactions:
        return ZERO_HASH
    return hashlib.sha256(b"".join(tx.tx_id() for tx in transactions)).digest()


def make_block(
    proposer: keys.KeyPair,
    parent: BlockHeader,
    transactions: Sequence[Transaction],
    state_root: bytes,
    timestamp: int,
    work: int = 0,
) -> Block:
    """Build the child of ``parent`` with its VRF output and sign it as ``proposer``."""
    output, proof = vrf.vrf_prove(proposer, vrf.vrf_input_for(parent))
    header = BlockHeader(
        height=parent.height + 1,
        prev_hash=parent.hash(),
        tx_root=tx_root(transactions),
        state_root=state_root,
        timestamp=timestamp,
        proposer=proposer.public_key,
        vrf_output=output,
        vrf_proof=proof,
        work=work,
    )
    return Block(header, tuple(transactions), proposer.sign(header.hash()))


def validate_block(
    block: Block,
    parent: BlockHeader,
    max_txs: int = MAX_TXS_PER_BLOCK,
    *,
    verify: Callable[[Transaction], bool] = Transaction.verify_signature,
) -> None:
    """The node's ``validate_block`` as intended; raises ``ProtocolError`` naming the fault.

    Checks height, parent hash, proposer signature over the header hash, VRF, tx_root, the tx
    count and every tx signature over its *signing* hash (the node at HEAD uses the full hash,
    which stalls its chain) with ``verify`` (a node passes its signature cache). Account rules
    are the caller's: they need the state.
    """
    h = block.header
    if h.height != parent.height + 1:
        raise ProtocolError(f"block height {h.height} does not follow parent {parent.height}")
    if h.prev_hash != parent.hash():
        raise ProtocolError(
            f"block {h.height} prev_hash {h.prev_hash.hex()} is not parent {parent.hash().hex()}"
        )
    if not block.verify_signature():
        raise ProtocolError(f"block {h.height} has an invalid proposer signature")
    if not vrf.vrf_verify(h.proposer, vrf.vrf_input_for(parent), h.vrf_output, h.vrf_proof):
        raise ProtocolError(f"block {h.height} has an invalid VRF output")
    if len(block.transactions) > max_txs:
        raise ProtocolError(
            f"block {h.height} has {len(block.transactions)} transactions, max {max_txs}"
        )
    if h.tx_root != tx_root(block.transactions):
        raise ProtocolError(f"block {h.height} tx_root {h.tx_root.hex()} does not match its txs")
    for index, tx in enumerate(block.transactions):
        if not verify(tx):
            raise ProtocolError(
                f"block {h.height} tx {index} ({tx.tx_id().hex()}) has an invalid signature"
            )


def genesis_seed(network_id: str) -> str:
    """The key seed of the genesis proposer of ``network_id`` (public: genesis is not mined)."""
    return f"bitcell-sim/genesis/{network_id}"


def genesis_accounts(allocations: Mapping[bytes, int] | None = None) -> dict[bytes, Account]:
    """The state at genesis: each allocated key holds its balance with nonce 0."""
    accounts: dict[bytes, Account] = {}
    for key, balance in (allocations or {}).items():
        _check_len("allocated key", key, PUBLIC_KEY_SIZE_BYTES)
        _check_u64("allocated balance", balance)
        accounts[bytes(key)] = Account(balance, 0)
    return accounts


def genesis_block(
    network_id: str, timestamp: int, allocations: Mapping[bytes, int] | None = None
) -> Block:
    """The devnet's one genesis: height 0, zero parent, signed by a key derived from the id.

    ``state_root`` is that of ``genesis_accounts(allocations)`` (zeros with none). Every node
    given the same inputs builds the same bytes (RFC 6979 signatures are deterministic), unlike
    the real node, whose genesis proposer is its own key.
    """
    proposer = keys.KeyPair.from_seed(genesis_seed(network_id))
    header = BlockHeader(
        height=0,
        prev_hash=ZERO_HASH,
        tx_root=ZERO_HASH,
        state_root=account.state_root(genesis_accounts(allocations)),
        timestamp=timestamp,
        proposer=proposer.public_key,
        vrf_output=ZERO_HASH,
        vrf_proof=b"",
        work=0,
    )
    return Block(header, (), proposer.sign(header.hash()))


def transaction_json(
    tx: Transaction, block_hash: bytes, block_number: int, index: int
) -> dict[str, str]:
    """``eth_getTransactionByHash`` object of an included tx (keys sorted, as serde_json)."""
    return {
        "blockHash": hexbytes(block_hash),
        "blockNumber": quantity(block_number),
        "from": hexbytes(tx.sender),
        "gas": quantity(tx.gas_limit),
        "gasPrice": quantity(tx.gas_price),
        "hash": hexbytes(tx.tx_id()),
        "input": hexbytes(tx.data),
        "nonce": quantity(tx.nonce),
        "to": hexbytes(tx.recipient),
        "transactionIndex": quantity(index),
        "value": quantity(tx.amount),
    }


def block_json(block: Block, full_transactions: bool = False) -> dict[str, Any]:
    """``eth_getBlockByNumber`` object: tx ids, or full tx objects if ``full_transactions``."""
    h = block.header
    block_hash = block.hash()
    txs: list[Any]
    if full_transactions:
        txs = [
            transaction_json(tx, block_hash, h.height, i) for i, tx in enumerate(block.transactions)
        ]
    else:
        txs = [hexbytes(tx.tx_id()) for tx in block.transactions]
    return {
        "battleProofsCount": len(block.battle_proofs),
        "difficulty": "0x1",
        "extraData": "0x",
        "gasLimit": GAS_LIMIT,
        "gasUsed": "0x0",
        "hash": hexbytes(block_hash),
        "logsBloom": LOGS_BLOOM,
        "miner": hexbytes(h.proposer),
        "nonce": f"0x{h.work:016x}",
        "number": quantity(h.height),
        "parentHash": hexbytes(h.prev_hash),
        "receiptsRoot": RECEIPTS_ROOT,
        "sha3Uncles": SHA3_UNCLES,
        "size": quantity(block.size_bytes),
        "stateRoot": hexbytes(h.state_root),
        "timestamp": quantity(h.timestamp),
        "totalDifficulty": quantity(h.height),
        "transactions": txs,
        "transactionsRoot": hexbytes(h.tx_root),
        "uncles": [],
        "vrfOutput": hexbytes(h.vrf_output),
    }
