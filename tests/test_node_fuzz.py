"""RPC fuzzing against a real node: malformed bodies, wrong params, random methods.

Whatever hypothesis sends, the node answers one of the documented outcomes (HTTP 400, 413,
415, 422, or a 200 JSON-RPC object with a documented error code), never a 500, and stays up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitcell_sim.node.harness import LocalNet, NodeProcess
from bitcell_sim.protocol.jsonrpc import Method

pytestmark = [pytest.mark.real, pytest.mark.timeout(180)]

DOCUMENTED_CODES = {-32600, -32601, -32602, -32603, -32000}
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80)
    | st.sampled_from(["0x", "0x00", "latest", "0x" + "ab" * 33, "0x" + "cd" * 32, "0xzz"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["commitment", "ring_signature", "miner", "nonce", "glider", "pattern"])
            | st.text(max_size=8),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
methods = st.sampled_from([m.value for m in Method]) | st.text(max_size=30)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with LocalNet(tmp_path_factory.mktemp("fuzz"), {"v": "validator"}, name="fuzz") as net:
        net.start()
        yield net.nodes["v"]


@pytest.fixture(scope="module")
def http(node: NodeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=node.rpc_url, timeout=10, trust_env=False) as client:
        yield client


def check(response: httpx.Response) -> None:
    assert response.status_code in (200, 400, 413, 415, 422), response.text
    if response.status_code != 200:
        assert response.headers["content-type"].startswith("text/plain")
        return
    body = response.json()
    assert list(body) == ["jsonrpc", "result", "error", "id"] and body["jsonrpc"] == "2.0"
    if body["error"] is not None:
        assert body["result"] is None
        assert set(body["error"]) == {"code", "message", "data"}
        assert body["error"]["code"] in DOCUMENTED_CODES
        assert body["error"]["message"] != "Internal error"


@FUZZ
@given(method=methods, params=json_values, request_id=json_values, omit=st.booleans())
def test_random_requests(
    http: httpx.Client, method: str, params: Any, request_id: Any, omit: bool
) -> None:
    request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
    if not omit:
        request["params"] = params
    response = http.post(
        "/rpc", content=json.dumps(request), headers={"Content-Type": "application/json"}
    )
    check(response)
    if response.status_code == 200 and method in {m.value for m in Method}:
        assert response.json()["error"] is None or response.json()["error"]["code"] != -32601


@FUZZ
@given(
    body=st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.builds(
        lambda m, p, v: json.dumps({"jsonrpc": v, "method": m, "params": p}).encode(),
        methods,
        json_values,
        st.sampled_from(["2.0", "1.0", 2]),
    ),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/json; charset=utf-8", ""]
    ),
)
def test_malformed_bodies(http: httpx.Client, body: bytes, content_type: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    check(http.post("/rpc", content=body, headers=headers))


@FUZZ
@given(
    raw=st.binary(min_size=0, max_size=400),
    prefix=st.sampled_from(["0x", "", "0X"]),
)
def test_random_raw_transactions(http: httpx.Client, raw: bytes, prefix: str) -> None:
    request = {
        "jsonrpc": "2.0",
        "method": "eth_sendRawTransaction",
        "params": [prefix + raw.hex()],
        "id": 1,
    }
    response = http.post("/rpc", json=request)
    check(response)
    error = response.json()["error"]
    assert error is not None and error["code"] == -32602


def test_node_survived(node: NodeProcess, http: httpx.Client) -> None:
    assert node.running()
    assert http.get("/health").status_code == 200
    assert " ERROR " not in node.log_text()
