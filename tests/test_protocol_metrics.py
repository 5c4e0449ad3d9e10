"""Metric names and texts of the node, the Prometheus renderer and parser."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bitcell_sim.protocol.errors import ProtocolError
from bitcell_sim.protocol.metrics import (
    DEVNET_METRICS,
    NODE_METRICS,
    PROMETHEUS_CONTENT_TYPE,
    SPECS,
    Histogram,
    MetricSpec,
    MetricType,
    Sample,
    format_value,
    parse_prometheus,
    parse_prometheus_samples,
    render_metric,
    render_prometheus,
)

RPC = "bitcell_rpc_request_duration_seconds"

NODE_TABLE = """\
bitcell_chain_height gauge Current blockchain height
bitcell_sync_progress gauge Sync progress percentage (0-100)
bitcell_peer_count gauge Number of connected peers
bitcell_dht_peer_count gauge Number of DHT peers
bitcell_bytes_sent_total counter Total bytes sent
bitcell_bytes_received_total counter Total bytes received
bitcell_messages_sent_total counter Total messages sent
bitcell_messages_received_total counter Total messages received
bitcell_pending_txs gauge Number of pending transactions
bitcell_txs_processed_total counter Total transactions processed
bitcell_proofs_generated_total counter Total proofs generated
bitcell_proofs_verified_total counter Total proofs verified
bitcell_active_miners gauge Number of active eligible miners
bitcell_banned_miners gauge Number of banned miners
bitcell_average_trust_score gauge Average trust score of miners
bitcell_slashing_events_total counter Total slashing events"""


def node_values() -> dict[str, float]:
    values: dict[str, float] = {spec.name: i for i, spec in enumerate(NODE_METRICS)}
    values["bitcell_average_trust_score"] = 0.85
    values["bitcell_sync_progress"] = 100
    return values


def test_sixteen_node_metrics_exactly() -> None:
    rows = [line.split(" ", 2) for line in NODE_TABLE.splitlines()]
    assert [(s.name, s.type.value, s.help) for s in NODE_METRICS] == [tuple(r) for r in rows]
    assert all(s.name.startswith("bitcell_") for s in DEVNET_METRICS)
    assert not {s.name for s in NODE_METRICS} & {s.name for s in DEVNET_METRICS}
    assert "bitcell_proof_gen_time_ms" not in {s.name for s in NODE_METRICS}


def test_render_node_text_exactly() -> None:
    text = render_prometheus(node_values())
    head = (
        "# HELP bitcell_chain_height Current blockchain height\n"
        "# TYPE bitcell_chain_height gauge\n"
        "bitcell_chain_height 0\n"
        "\n"
        "# HELP bitcell_sync_progress Sync progress percentage (0-100)\n"
        "# TYPE bitcell_sync_progress gauge\n"
        "bitcell_sync_progress 100\n"
        "\n"
    )
    assert text.startswith(head)
    assert text.endswith(
        "# TYPE bitcell_slashing_events_total counter\nbitcell_slashing_events_total 15\n"
    )
    assert "bitcell_average_trust_score 0.85\n" in text
    assert text.count("\n\n") == 15
    assert not text.endswith("\n\n")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (12, "12"),
        (0.0, "0"),
        (0.6, "0.6"),
        (0.85, "0.85"),
        (3.0, "3"),
        (1e20, "1e+20"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
        (True, "1"),
    ],
)
def test_format_value(value: float, text: str) -> None:
    assert format_value(value) == text


def test_render_errors() -> None:
    values = node_values()
    del values["bitcell_peer_count"]
    with pytest.raises(ProtocolError, match="missing value for node metric 'bitcell_peer_count'"):
        render_prometheus(values)
    assert "bitcell_peer_count" not in render_prometheus(values, require_node_metrics=False)
    with pytest.raises(ProtocolError, match="unknown metric 'bitcell_proof_gen_time_ms'"):
        render_prometheus({**node_values(), "bitcell_proof_gen_time_ms": 1})
    with pytest.raises(ProtocolError, match="is a histogram: pass it in histograms"):
        render_prometheus({**node_values(), "bitcell_block_propagation_seconds": 1})
    with pytest.raises(ProtocolError, match="is a gauge, not a histogram"):
        render_prometheus(node_values(), {"bitcell_round_phase": Histogram()})


def test_histogram() -> None:
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 2.0):
        h.observe(v)
    assert h.cumulative() == [(0.1, 2), (1.0, 3), (math.inf, 4)]
    assert (h.count, h.sum) == (4, pytest.approx(2.65))
    text = render_prometheus(
        {}, {"bitcell_block_propagation_seconds": h}, require_node_metrics=False
    )
    assert text == (
        "# HELP bitcell_block_propagation_seconds Seconds from a block's production by its "
        "proposer to its import on this node\n"
        "# TYPE bitcell_block_propagation_seconds histogram\n"
        'bitcell_block_propagation_seconds_bucket{le="0.1"} 2\n'
        'bitcell_block_propagation_seconds_bucket{le="1"} 3\n'
        'bitcell_block_propagation_seconds_bucket{le="+Inf"} 4\n'
        "bitcell_block_propagation_seconds_sum 2.65\n"
        "bitcell_block_propagation_seconds_count 4\n"
    )
    with pytest.raises(ProtocolError, match=r"bounds \[1.0, 0.5\] must be non-empty, increasing"):
        Histogram((1.0, 0.5))
    with pytest.raises(ProtocolError, match="must be non-empty"):
        Histogram(())


def test_labelled_histogram_text() -> None:
    fast, slow = Histogram((0.1,)), Histogram((0.1,))
    fast.observe(0.05)
    slow.observe(0.5)
    text = render_prometheus(
        {},
        {RPC: {("eth_getBalance",): slow, ("eth_blockNumber",): fast}},
        require_node_metrics=False,
    )
    assert text == (
        f"# HELP {RPC} Seconds to handle one JSON-RPC request, by method\n"
        f"# TYPE {RPC} histogram\n"
        f'{RPC}_bucket{{method="eth_blockNumber",le="0.1"}} 1\n'
        f'{RPC}_bucket{{method="eth_blockNumber",le="+Inf"}} 1\n'
        f'{RPC}_sum{{method="eth_blockNumber"}} 0.05\n'
        f'{RPC}_count{{method="eth_blockNumber"}} 1\n'
        f'{RPC}_bucket{{method="eth_getBalance",le="0.1"}} 0\n'
        f'{RPC}_bucket{{method="eth_getBalance",le="+Inf"}} 1\n'
        f'{RPC}_sum{{method="eth_getBalance"}} 0.5\n'
        f'{RPC}_count{{method="eth_getBalance"}} 1\n'
    )
    empty = render_prometheus({}, {RPC: {}}, require_node_metrics=False)
    assert empty == f"# HELP {RPC} {SPECS[RPC].help}\n# TYPE {RPC} histogram\n"


def test_render_metric_of_a_spec_outside_the_catalogue() -> None:
    spec = MetricSpec("x_seconds", MetricType.GAUGE, "An x", ("peer", "dir"))
    text = render_metric(spec, {("b", "in"): 0.5, ("a\n", "out"): 2.0})
    assert text == (
        "# HELP x_seconds An x\n# TYPE x_seconds gauge\n"
        'x_seconds{peer="a\\n",dir="out"} 2\nx_seconds{peer="b",dir="in"} 0.5'
    )
    assert render_metric(MetricSpec("y", MetricType.COUNTER, "A y"), 3).endswith("\ny 3")


def test_labelled_shape_errors() -> None:
    with pytest.raises(ProtocolError, match=r"is labelled by \('method',\): pass \{label values"):
        render_prometheus(node_values(), {RPC: Histogram()})
    with pytest.raises(ProtocolError, match="'bitcell_block_propagation_seconds' has no labels"):
        render_prometheus(node_values(), {"bitcell_block_propagation_seconds": {(): Histogram()}})
    with pytest.raises(ProtocolError, match=r"label values \('a', 'b'\) do not match labels"):
        render_prometheus(node_values(), {RPC: {("a", "b"): Histogram()}})


def test_parse_own_output() -> None:
    h = Histogram()
    h.observe(0.003)
    values = parse_prometheus(render_prometheus(node_values(), {RPC: {("eth_blockNumber",): h}}))
    assert values["bitcell_average_trust_score"] == 0.85
    assert values["bitcell_slashing_events_total"] == 15
    assert values[f'{RPC}_bucket{{le="0.005",method="eth_blockNumber"}}'] == 1
    assert values[f'{RPC}_bucket{{le="+Inf",method="eth_blockNumber"}}'] == 1
    assert values[f'{RPC}_count{{method="eth_blockNumber"}}'] == 1


def test_parse_foreign_text() -> None:
    text = (
        "# HELP up whatever\n"
        "up 1\n"
        'http_requests_total{method="post",code="200"} 1027 1395066363000\n'
        'msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find '
        'file:\\n\\"FILE.TXT\\""} 1.458255915e9\n'
        "   \n"
        'something_weird{problem="division by zero"} +Inf -3982045\n'
        "nan_value NaN\n"
    )
    samples = parse_prometheus_samples(text)
    assert samples[0] == Sample("up", (), 1.0)
    assert samples[1].labels == (("method", "post"), ("code", "200"))
    assert samples[1].key == 'http_requests_total{code="200",method="post"}'
    assert samples[2].labels[0] == ("path", "C:\\DIR\\FILE.TXT")
    assert samples[2].labels[1] == ("error", 'Cannot find file:\n"FILE.TXT"')
    assert samples[3].value == math.inf
    assert math.isnan(samples[4].value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9bad 1", "line 1: no metric name"),
        ("a 1 2 3", "line 1: expected a value"),
        ("a", "line 1: expected a value"),
        ("ok 1\na x", "line 2: bad value 'x'"),
        ('a{b="c} 1', "unterminated label value"),
        ("a{b=c} 1", "bad label at column 3"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_prometheus_samples(text)


def test_reference_parser_agrees() -> None:
    h = Histogram()
    for v in (0.0001, 0.02, 0.7, 100.0):
        h.observe(v)
    other = Histogram()
    other.observe(0.3)
    text = render_prometheus(node_values(), {RPC: {("eth_blockNumber",): h, ("other",): other}})
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for spec in NODE_METRICS:
        # The reference parser strips the _total suffix from counter family names.
        name = spec.name.removesuffix("_total") if spec.type is MetricType.COUNTER else spec.name
        family = families[name]
        assert family.type == spec.type.value
        assert family.documentation == spec.help
    ours = parse_prometheus(text)
    for family in families.values():
        for s in family.samples:
            key = Sample(s.name, tuple(s.labels.items()), s.value).key
            assert ours[key] == s.value


class _Handler(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        if self.path != "/metrics":
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", PROMETHEUS_CONTENT_TYPE)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def metrics_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.real
@pytest.mark.timeout(20)
def test_scrape_over_http(metrics_server: ThreadingHTTPServer) -> None:
    h = Histogram()
    h.observe(0.2)
    _Handler.body = render_prometheus(
        node_values(), {"bitcell_block_propagation_seconds": h}
    ).encode()
    port = metrics_server.server_address[1]
    resp = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == PROMETHEUS_CONTENT_TYPE
    values = parse_prometheus(resp.text)
    assert values["bitcell_chain_height"] == 0
    assert values['bitcell_block_propagation_seconds_bucket{le="0.25"}'] == 1
    assert len(list(text_string_to_metric_families(resp.text))) == 17
