"""Every package's public API, pinned by equality: a name added or dropped is a decision.

Each ``__all__`` must equal the list here (sorted, no duplicates) and every name must resolve.
"""

from __future__ import annotations

import importlib

import pytest

PUBLIC_API: dict[str, list[str]] = {
    "bitcell_sim.deploy": [
        "Export", "FORMATS", "NodeProgram", "PROGRAMS", "deployment_files", "export_deployment",
        "node_config", "node_program", "parse_genesis_time",
    ],
    "bitcell_sim": [
        "BitcellSimError", "DevnetError", "FaultError", "LoadError", "ModelError",
        "MonitoringError", "NetemError",
        "ResultsError", "RpcError", "Topology", "TopologyError", "__version__", "load_topology",
    ],
    "bitcell_sim.topology": [
        "ARRIVAL_PROCESSES", "AddedLatency", "ArrivalProcess", "Arrivals", "CpuThrottle",
        "DirectedLink", "Fault", "FaultScope", "JITTER_DISTRIBUTIONS", "JitterDistribution",
        "LinkParams", "NodeDown", "Override", "Partition", "RateProfile", "RateStage", "RegionDown",
        "SeedTree", "TargetRegion", "Topology", "Workload", "apply_overrides", "arrival_schedule",
        "boundary_links", "dump_topology", "fault_scope", "generate_topology", "link_params",
        "load_topology", "network_diameter_s", "parse_topology", "partition_links",
        "partition_sides", "peer_graph", "resolve_targets", "standard_jitter", "to_gml",
    ],
    "bitcell_sim.protocol": [
        "ALREADY_IN_POOL", "Account", "AccountLookup", "AsyncRpcClient", "BattleProof", "Block",
        "BlockHeader", "BlockMessage", "Blocks", "ChainTip", "Commitment", "DEVNET_METRICS",
        "DecodeError", "FinalityStatus", "FinalityVote", "FrameDecoder", "GLIDER_PATTERNS",
        "GetBlocks", "GetPeers", "Handshake", "Hello", "HelloProof", "Histogram",
        "INITIAL_BLOCK_REWARD", "INTERNAL_ERROR", "INVALID_PARAMS", "INVALID_REQUEST", "KeyPair",
        "MAX_FRAME_BYTES", "MAX_GAS_LIMIT", "MAX_GAS_PRICE", "MAX_TXS_PER_BLOCK",
        "METHOD_NOT_FOUND", "MSG_ALREADY_IN_POOL", "MSG_POOL_FULL", "Message", "Method",
        "MetricSpec", "MetricType", "NODE_METRICS", "PARSE_ERROR", "POOL_CAPACITY",
        "POOL_ERROR_CODE", "POOL_FULL", "Peers", "Phase",
        "PhaseWindow", "Ping", "Pong", "ProtocolError", "Reader", "Reveal", "RoundSchedule",
        "RpcCall", "RpcClient", "SERVER_ERROR", "SYNCING_LAG_BLOCKS", "Status", "Transaction",
        "TransactionMessage", "VoteType", "Writer", "admit_raw_transaction", "apply_block",
        "apply_transaction", "block_json", "block_reward", "build_request", "check_account_rules",
        "commitment_hash", "decode_message", "decode_raw_transaction", "encode_frame",
        "encode_message", "error_response", "fork_choice_key", "genesis_accounts", "genesis_block",
        "hexbytes", "is_better", "is_low_s", "is_syncing", "is_valid_public_key", "make_block",
        "parse_hexbytes", "parse_prometheus", "parse_prometheus_samples", "parse_quantity",
        "parse_response", "pool_error", "pool_priority", "prefer", "quantity", "read_message",
        "render_prometheus", "rpc_url", "sign_transaction", "state_root", "success_response",
        "ticket", "transaction_json", "tx_root", "validate_block", "verify", "vrf_input_for",
        "vrf_prove", "vrf_verify", "winner", "write_message",
    ],
    "bitcell_sim.model": [
        "ModelResult", "Override", "Simulation", "apply_overrides", "simulate",
    ],
    "bitcell_sim.node": [
        "Node", "NodeConfig", "NodeSettings", "load_config",
    ],
    "bitcell_sim.devnet": [
        "Devnet", "DevnetMeta", "DevnetPlan", "DevnetStatus", "DownResult", "Health", "LinkFault",
        "LinkPlan", "NodeEndpoint", "NodePorts", "NodeStatus", "PeerRtt", "ProcessRecord",
        "ReadyProgress", "StateDir", "UpEvent", "check_ports_free", "cpu_seconds",
        "default_node_command", "devnet_status", "down", "is_running", "link_name", "link_specs",
        "node_peers", "plan_devnet", "read_peer_rtts", "spawn", "stop_processes", "up",
        "wait_for_peer_rtts",
    ],
    "bitcell_sim.netem": [
        "ControlServer", "DEFAULT_MAX_QUEUED_BYTES", "DelayProbe", "DelaySample", "Emulator",
        "EmulatorProcess", "InOrderClock", "JITTER_DISTRIBUTIONS", "JitterDistribution",
        "JitterSampler", "LinkCounters", "LinkParams", "LinkSpec", "LinkState", "NetemClient",
        "Piece", "ProbeServer", "Serializer", "UnknownLinkError", "build_app", "check_loopback",
        "links_from_json", "links_to_json", "measure_delays", "parse_ready_line",
        "read_links_file", "schedule_chunk", "serve", "transmission_time_s", "write_links_file",
    ],
    "bitcell_sim.faults": [
        "ActiveFault", "BACKENDS", "ChaosReport", "ChaosScheduler", "Convergence", "DevnetFaults",
        "FaultEvent", "PeerRtt", "ThrottleHandle", "TimelineStep", "Tip", "append_event",
        "apply_throttle", "common_tip", "describe", "detect_backend", "fault_timeline",
        "read_events", "read_peer_rtts", "read_tip", "read_tips", "release_throttle",
        "wait_for_common_tip", "wait_for_peer_rtts", "wait_until_caught_up",
    ],
    "bitcell_sim.load": [
        "CATEGORIES", "ChainReader", "ChainWatcher", "Endpoint", "FreshSenders", "FundedSenders",
        "HeightSeen", "Lease", "LoadPlan", "LoadSession", "LocustProcess", "Pacer", "REPLAY",
        "SessionStatus", "Slot", "Stall", "StallDetector", "TxFactory", "TxLog", "TxRecord",
        "default_locustfile", "distribution", "format_summary", "host_workload", "locust_argv",
        "parse_seconds", "plan_from_host", "plan_from_options", "plan_from_topology",
        "prepare_run_dir", "read_outputs", "recipient_key", "reject_category", "reject_reason",
        "replay_table", "summarize", "users_for_rate", "write_outputs", "write_replay",
    ],
    "bitcell_sim.monitoring": [
        "AlertPrediction", "AlertRule", "FrontDoorOutage", "MeasuredPage", "MonitoringFiles",
        "MonitoringPrediction", "Notification", "NotifiedAlert", "PageComparison", "ToolCheck",
        "Window", "alert_rules", "alertmanager_config", "check_monitoring", "dashboard",
        "exported_metrics", "find_binary", "haproxy_config", "measured_pages",
        "measured_pages_of_run", "metric_names", "pages_side_by_side", "predict_alerts",
        "predict_front_door", "predict_run", "prom_duration", "prometheus_config",
        "read_notifications", "render_monitoring", "rules_document",
    ],
    "bitcell_sim.results": [
        "BLOCKS", "BLOCK_ARRIVALS", "Comparison", "FAIL", "FaultWindow", "MetricComparison",
        "NODE_TIMELINE", "PASS", "RunFolder", "RunRecords", "RunWindow", "SideStats", "TABLES",
        "TRANSACTIONS", "UNKNOWN", "check_table", "compare", "failed_expectations", "new_run_id",
        "overall_verdict", "read_runs", "read_table", "software_versions", "summarize",
        "summarize_run", "to_table", "write_table",
    ],
}  # fmt: skip


@pytest.mark.parametrize("package", sorted(PUBLIC_API))
def test_all_is_pinned(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == PUBLIC_API[package]
    assert len(set(module.__all__)) == len(module.__all__), "duplicates in __all__"
    for name in module.__all__:
        assert hasattr(module, name), f"{package}.{name} does not resolve"
