"""The public API of bitcell_sim.protocol is pinned: every name in __all__ resolves."""

from __future__ import annotations

import importlib
import pkgutil

import bitcell_sim.protocol as protocol

EXPECTED = {
    "ALREADY_IN_POOL", "DEVNET_METRICS", "GLIDER_PATTERNS", "INITIAL_BLOCK_REWARD",
    "INTERNAL_ERROR", "INVALID_PARAMS", "INVALID_REQUEST", "MAX_FRAME_BYTES", "MAX_GAS_LIMIT",
    "MAX_GAS_PRICE", "MAX_TXS_PER_BLOCK", "METHOD_NOT_FOUND", "MSG_ALREADY_IN_POOL",
    "MSG_POOL_FULL", "NODE_METRICS", "PARSE_ERROR", "POOL_CAPACITY", "POOL_FULL", "SERVER_ERROR",
    "Account", "AccountLookup", "AsyncRpcClient", "BattleProof", "Block", "BlockHeader",
    "BlockMessage", "Blocks", "ChainTip", "Commitment", "DecodeError", "FinalityStatus",
    "FinalityVote", "FrameDecoder", "GetBlocks", "GetPeers", "Handshake", "Histogram", "KeyPair",
    "Message", "MetricSpec", "MetricType", "Method", "Peers", "Phase", "PhaseWindow", "Ping",
    "Pong", "ProtocolError", "Reader", "Reveal", "RoundSchedule", "RpcCall", "RpcClient",
    "Status", "Transaction", "TransactionMessage", "VoteType", "Writer",
    "admit_raw_transaction", "apply_block", "apply_transaction", "block_json", "block_reward",
    "build_request", "check_account_rules", "commitment_hash", "decode_message",
    "decode_raw_transaction", "encode_frame", "encode_message", "error_response",
    "fork_choice_key", "genesis_accounts", "genesis_block", "hexbytes", "is_better", "is_low_s",
    "is_valid_public_key", "make_block", "parse_hexbytes", "parse_prometheus",
    "parse_prometheus_samples", "parse_quantity", "parse_response", "pool_error",
    "pool_priority", "prefer", "quantity", "read_message", "render_prometheus", "rpc_url",
    "sign_transaction", "state_root", "success_response", "ticket", "transaction_json",
    "tx_root", "validate_block", "verify", "vrf_input_for", "vrf_prove", "vrf_verify",
    "winner", "write_message",
}  # fmt: skip


def test_all_is_pinned() -> None:
    assert set(protocol.__all__) == EXPECTED
    assert len(protocol.__all__) == len(EXPECTED)  # no duplicates
    for name in protocol.__all__:
        assert getattr(protocol, name) is not None, name


def test_errors_belong_to_the_hierarchy() -> None:
    from bitcell_sim.errors import BitcellSimError

    assert issubclass(protocol.ProtocolError, BitcellSimError)
    assert issubclass(protocol.ProtocolError, ValueError)
    assert issubclass(protocol.DecodeError, protocol.ProtocolError)


def test_every_module_has_a_docstring_and_imports() -> None:
    names = [m.name for m in pkgutil.iter_modules(protocol.__path__)]
    assert len(names) >= 15
    for name in names:
        module = importlib.import_module(f"bitcell_sim.protocol.{name}")
        doc = module.__doc__ or ""
        assert 2 <= len(doc.strip().splitlines()) <= 6, name
