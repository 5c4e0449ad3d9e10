"""Node parts without processes: tournament windows, HTTP request rules, framing, replay, config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bitcell_sim.errors import DevnetError
from bitcell_sim.node.config import NodeSettings, load_config, parse_host_port, write_p2p_key
from bitcell_sim.node.harness import topology_document
from bitcell_sim.node.metrics import NodeMetrics
from bitcell_sim.node.node import production_time_s
from bitcell_sim.node.peers import Framer
from bitcell_sim.node.replay import battle_replay
from bitcell_sim.node.rpc import HttpReject, is_json_content_type, parse_request_body
from bitcell_sim.node.tournament import Offer, Tournament
from bitcell_sim.protocol.consensus import RoundSchedule
from bitcell_sim.protocol.errors import DecodeError
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.metrics import NODE_METRICS, parse_prometheus
from bitcell_sim.protocol.p2p import Ping, Status, decode_message, encode_frame

SCHEDULE = RoundSchedule(genesis_time_s=1000.0, commit_s=1.0, reveal_s=1.0, battle_s=1.0)
V = [KeyPair.from_seed(f"tv{i}") for i in range(3)]
PARENT = bytes(32)


def tournament(me: int = 0) -> Tournament:
    return Tournament(SCHEDULE, frozenset(k.public_key for k in V), V[me])


def test_commitment_and_reveal_in_time_count() -> None:
    mine, other = tournament(0), tournament(1)
    c, r = other.own_messages(2, PARENT)
    start = SCHEDULE.round_start(2)
    assert mine.offer_commitment(c, start + 0.5) is Offer.COUNTED
    assert mine.offer_commitment(c, start + 0.6) is Offer.DUPLICATE
    assert mine.offer_reveal(r, start + 1.5) is Offer.COUNTED
    assert mine.participants(2) == {V[1].public_key}


def test_late_messages_do_not_count() -> None:
    mine, other = tournament(0), tournament(1)
    c, r = other.own_messages(2, PARENT)
    start = SCHEDULE.round_start(2)
    assert mine.offer_commitment(c, start + 1.0) is Offer.LATE
    assert mine.offer_reveal(r, start + 1.5) is Offer.LATE  # its commitment did not count
    c3, r3 = other.own_messages(3, PARENT)
    start3 = SCHEDULE.round_start(3)
    assert mine.offer_commitment(c3, start3) is Offer.COUNTED
    assert mine.offer_reveal(r3, start3 + 2.0) is Offer.LATE
    assert mine.participants(2) == mine.participants(3) == frozenset()


def test_foreign_forged_and_stale_messages_are_rejected() -> None:
    mine = tournament(0)
    outsider = Tournament(SCHEDULE, frozenset(), KeyPair.from_seed("outsider"))
    c, _ = outsider.own_messages(2, PARENT)
    t = SCHEDULE.round_start(2)
    assert mine.offer_commitment(c, t) is Offer.REJECTED
    good, _ = tournament(2).own_messages(2, PARENT)
    forged = type(good)(good.round_index, good.prev_hash, good.miner, bytes(32), good.signature)
    assert mine.offer_commitment(forged, t) is Offer.REJECTED
    assert mine.offer_commitment(good, SCHEDULE.round_start(20)) is Offer.STALE
    assert mine.offer_commitment(good, t) is Offer.COUNTED  # the forgery did not shadow it


@pytest.mark.parametrize(
    ("genesis_s", "timestamp", "expected"),
    [
        (1000.4, 1003, 1003.4),  # round 0 ends at 1003.4: stamped 1003
        (1000.4, 1006, 1006.4),
        (1000.4, 1005, 1005.0),  # no round end within the second after the stamp
        (1000.4, 1000, 1000.0),  # before the first round end
        (1000.0, 1003, 1003.0),  # on a whole-second boundary
        (1000.0, 1002, 1002.0),
    ],
)
def test_production_time_is_the_round_end_within_a_second_after_the_stamp(
    genesis_s: float, timestamp: int, expected: float
) -> None:
    schedule = RoundSchedule(genesis_time_s=genesis_s, commit_s=1.0, reveal_s=1.0, battle_s=1.0)
    assert production_time_s(schedule, timestamp) == pytest.approx(expected)


def test_own_messages_are_deterministic_and_open_each_other() -> None:
    c1, r1 = tournament(0).own_messages(5, PARENT)
    c2, r2 = tournament(0).own_messages(5, PARENT)
    assert (c1, r1) == (c2, r2) and r1.matches(c1) and c1.verify() and r1.verify()


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),
        ("application/vnd.api+json", True),
        ("text/json", False),
        ("application/jsonx", False),
        ("", False),
        (None, False),
        ("text/plain", False),
    ],
)
def test_json_content_type(value: str | None, ok: bool) -> None:
    assert is_json_content_type(value) is ok


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"{", 400, "Failed to parse the request body as JSON"),
        (b"", 400, "Failed to parse the request body as JSON"),
        (b"\xff\xfe", 400, "Failed to parse the request body as JSON"),
        (b'{"jsonrpc":"2.0","method":"x","id":NaN}', 400, "Failed to parse"),
        (b"[" * 100_000, 400, "Failed to parse"),
        (b"[]", 422, "Failed to deserialize the JSON body into the target type"),
        (b'[{"jsonrpc":"2.0","method":"eth_blockNumber"}]', 422, "expected a JSON object"),
        (b'{"method":"eth_blockNumber"}', 422, "missing field `jsonrpc`"),
        (b'{"jsonrpc":"2.0"}', 422, "missing field `method`"),
        (b'{"jsonrpc":2,"method":"m"}', 422, "invalid type for `jsonrpc`"),
        (b'{"jsonrpc":"2.0","method":"a","method":"b"}', 422, "duplicate field `method`"),
    ],
)
def test_request_body_rejections(body: bytes, status: int, text: str) -> None:
    with pytest.raises(HttpReject) as caught:
        parse_request_body(body)
    assert caught.value.status == status and text in caught.value.text


def test_request_body_accepts_nested_duplicates_and_extra_fields() -> None:
    body = parse_request_body(b'{"jsonrpc":"1.0","method":"m","params":[{"a":1,"a":2}],"x":1}')
    assert body["params"] == [{"a": 2}] and body["jsonrpc"] == "1.0"


def test_framer_splits_frames_across_chunks() -> None:
    frames = encode_frame(Ping()) + encode_frame(Status(7, bytes(range(32))))
    framer = Framer()
    out = [p for i in range(len(frames)) for p in framer.feed(frames[i : i + 1])]
    assert [decode_message(p) for p in out] == [Ping(), Status(7, bytes(range(32)))]
    with pytest.raises(DecodeError, match="frame length 4294967295 exceeds maximum"):
        Framer().feed(b"\xff\xff\xff\xff")


def test_battle_replay_shape() -> None:
    replay = battle_replay(12)
    assert set(replay) == {"block_height", "grid_states", "outcome"}
    assert replay["block_height"] == 12
    assert len(replay["grid_states"]) == 11
    assert all(len(f) == 64 and all(len(row) == 64 for row in f) for f in replay["grid_states"])
    assert {c for f in replay["grid_states"] for row in f for c in row} <= {0, 1, 2}
    assert replay["outcome"] in ("Miner A Wins", "Miner B Wins", "Tie")
    outcomes = {battle_replay(h)["outcome"] for h in range(30)}
    assert {"Miner A Wins", "Miner B Wins"} <= outcomes


def test_metrics_text_has_catalogue_and_per_method_histograms() -> None:
    metrics = NodeMetrics()
    metrics.observe_rpc("eth_blockNumber", 0.002)
    metrics.observe_rpc("nope", 0.002)
    values = {spec.name: 0 for spec in NODE_METRICS}
    text = metrics.render(values)
    parsed = parse_prometheus(text)
    assert parsed['bitcell_rpc_request_duration_seconds_count{method="eth_blockNumber"}'] == 1
    assert parsed['bitcell_rpc_request_duration_seconds_count{method="other"}'] == 1
    counts = [
        v for k, v in parsed.items() if k.startswith("bitcell_rpc_request_duration_seconds_c")
    ]
    assert sum(counts) == 2


def _write(tmp_path: Path, config: dict[str, object]) -> Path:
    ports = {"a": (30001, 30002, 30003), "b": (30004, 30005, 30006)}
    topo = tmp_path / "t.yaml"
    topo.write_text(
        yaml.safe_dump(topology_document("cfg", {"a": "validator", "b": "full"}, ports))
    )
    keys = {name: KeyPair.from_seed(f"cfg-p2p-{name}") for name in ("a", "b")}
    write_p2p_key(tmp_path / "a.key", keys["a"])
    path = tmp_path / "a.json"
    base = {
        "node": "a",
        "topology": "t.yaml",
        "data_dir": "data",
        "genesis_time_unix_s": 1.0,
        "peers": {"b": "127.0.0.1:30005"},
        "p2p_key_file": "a.key",
        "p2p_keys": {name: key.public_key.hex() for name, key in keys.items()},
    }
    path.write_text(json.dumps({**base, **config}))
    return path


def test_config_resolves_relative_paths_and_peers(tmp_path: Path) -> None:
    settings = NodeSettings.resolve(load_config(_write(tmp_path, {})))
    assert settings.config.data_dir == tmp_path / "data"
    assert settings.peers == {"b": ("127.0.0.1", 30005)}
    assert settings.is_validator and settings.spec.rpc_port == 30001
    assert settings.keypair.public_key.hex().startswith(("02", "03"))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"bogus": 1}, r"bogus: Extra inputs are not permitted"),
        ({"peers": {"b": "nohost"}}, r"peer address 'nohost' is not host:port"),
        ({"node": "zzz"}, r"node 'zzz' is not in topology .*\(nodes: a, b\)"),
        ({"peers": {"q": "127.0.0.1:1"}}, r"peers \['q'\] are not in the topology"),
        ({"peers": {"a": "127.0.0.1:1"}}, r"cannot peer with itself"),
        (
            {"p2p_keys": {"a": KeyPair.from_seed("cfg-p2p-a").public_key.hex()}},
            r"p2p_keys must name every node of the topology; missing b",
        ),
        (
            {"p2p_keys": {"a": "02zz", "b": "03"}},
            r"p2p_keys: Value error, a: '02zz' is not a compressed",
        ),
        ({"p2p_key_file": "missing.key"}, r"p2p_key_file .*missing\.key: No such file"),
        (
            {"p2p_key_file": "t.yaml"},
            r"p2p_key_file .*t\.yaml: not a secret key \(64 hex digits\)",
        ),
    ],
)
def test_config_mistakes_are_named(tmp_path: Path, config: dict[str, object], message: str) -> None:
    with pytest.raises(DevnetError, match=message):
        NodeSettings.resolve(load_config(_write(tmp_path, config)))


def test_host_port() -> None:
    assert parse_host_port("127.0.0.1:80") == ("127.0.0.1", 80)
    with pytest.raises(ValueError, match="'x:0' is not host:port"):
        parse_host_port("x:0")
