"""Link parameters, link specs, the links file and the public API of bitcell_sim.netem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bitcell_sim.errors import NetemError
from bitcell_sim.netem import (
    LinkParams,
    LinkSpec,
    check_loopback,
    links_from_json,
    links_to_json,
    read_links_file,
    write_links_file,
)
from bitcell_sim.netem.linksfile import check_keys


def test_params_defaults_and_normalisation() -> None:
    params = LinkParams(latency_s=0.04, bandwidth_bps=0)
    assert params.bandwidth_bps is None
    assert LinkParams(bandwidth_bps=10_000_000).bandwidth_bps == 10e6
    assert params.base_delay_s == pytest.approx(0.04)
    faulted = params.replace(extra_latency_s=0.1, partitioned=True)
    assert faulted.base_delay_s == pytest.approx(0.14)
    assert faulted.partitioned and not params.partitioned


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"latency_s": -0.001}, r"latency_s=-0\.001 must be a finite number >= 0"),
        ({"latency_s": float("nan")}, r"latency_s=nan must be a finite"),
        ({"latency_s": "40 ms"}, r"latency_s='40 ms' must be a number of seconds"),
        ({"jitter_s": -1.0, "jitter_distribution": "normal"}, r"jitter_s=-1\.0"),
        ({"jitter_distribution": "gauss"}, r"jitter_distribution='gauss' must be one of none"),
        ({"jitter_s": 0.005}, r"jitter_s=0\.005 needs a jitter_distribution other than 'none'"),
        ({"bandwidth_bps": -5}, r"bandwidth_bps=-5 must be a finite number >= 0"),
        ({"bandwidth_bps": "10 Mbit"}, r"bandwidth_bps='10 Mbit' must be a number"),
        ({"extra_latency_s": -0.5}, r"extra_latency_s=-0\.5"),
        ({"partitioned": "yes"}, r"partitioned='yes' must be true or false"),
    ],
)
def test_params_reject_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(NetemError, match=message):
        LinkParams(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "127.255.255.254"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    assert check_loopback(host, "host") == host


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("0.0.0.0", r"host='0\.0\.0\.0' is outside 127\.0\.0\.0/8"),
        ("10.0.0.1", r"host='10\.0\.0\.1' is outside 127\.0\.0\.0/8"),
        ("::1", r"host='::1' is outside 127\.0\.0\.0/8"),
        ("localhost", r"host='localhost' is not an IPv4 address"),
        ("example.com", r"host='example\.com' is not an IPv4 address"),
    ],
)
def test_non_loopback_hosts_are_refused(host: str, message: str) -> None:
    with pytest.raises(NetemError, match=message):
        check_loopback(host, "host")


def test_spec_validation_names_the_link() -> None:
    with pytest.raises(NetemError, match=r"link 'a->b': target_host='192\.168\.1\.5' is outside"):
        LinkSpec(name="a->b", listen_port=0, target_port=9000, target_host="192.168.1.5")
    with pytest.raises(NetemError, match=r"link 'a->b': listen_host='0\.0\.0\.0' is outside"):
        LinkSpec(name="a->b", listen_port=0, target_port=9000, listen_host="0.0.0.0")
    with pytest.raises(NetemError, match=r"link 'a->b': target_port=0 must be an integer port"):
        LinkSpec(name="a->b", listen_port=0, target_port=0)
    with pytest.raises(NetemError, match=r"link 'a->b': listen_port=70000"):
        LinkSpec(name="a->b", listen_port=70000, target_port=1)
    with pytest.raises(NetemError, match=r"link 'a->b': seed=-1 must be an integer >= 0"):
        LinkSpec(name="a->b", listen_port=0, target_port=1, seed=-1)
    with pytest.raises(NetemError, match=r"link name='a b' must not contain spaces"):
        LinkSpec(name="a b", listen_port=0, target_port=1)
    with pytest.raises(NetemError, match=r"link name='' must be a non-empty string"):
        LinkSpec(name="", listen_port=0, target_port=1)


def _specs() -> list[LinkSpec]:
    return [
        LinkSpec(
            name="us-east-1->eu-central-1",
            listen_port=41001,
            target_port=30002,
            params=LinkParams(
                latency_s=0.045, jitter_s=0.002, jitter_distribution="normal", bandwidth_bps=1e8
            ),
            seed=7,
        ),
        LinkSpec(name="eu-central-1->us-east-1", listen_port=41002, target_port=30001, seed=8),
    ]


def test_links_json_round_trip(tmp_path: Path) -> None:
    specs = _specs()
    assert links_from_json(links_to_json(specs)) == specs
    path = write_links_file(tmp_path / "links.json", specs)
    assert read_links_file(path) == specs
    document = json.loads(path.read_text())
    assert document["version"] == 1
    assert document["links"][0]["params"] == {
        "latency_s": 0.045,
        "jitter_s": 0.002,
        "jitter_distribution": "normal",
        "bandwidth_bps": 1e8,
        "extra_latency_s": 0.0,
        "partitioned": False,
    }
    assert not (tmp_path / "links.json.tmp").exists()


def test_links_file_defaults_optional_keys() -> None:
    text = json.dumps(
        {"version": 1, "links": [{"name": "x", "listen_port": 0, "target_port": 5000}]}
    )
    (spec,) = links_from_json(text)
    assert spec == LinkSpec(name="x", listen_port=0, target_port=5000)
    assert spec.params == LinkParams()


def _document(**link: object) -> str:
    base: dict[str, object] = {"name": "x", "listen_port": 0, "target_port": 5000}
    base.update(link)
    return json.dumps({"version": 1, "links": [base]})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", r"links\.json: not valid JSON"),
        ("[]", r"links\.json: expected an object with 'links', got list"),
        ('{"version": 2, "links": []}', r"links\.json: version=2 is not supported"),
        ('{"version": 1, "links": {}}', r"links\.json: links=\{\} must be a list"),
        ('{"version": 1, "links": [], "extra": 1}', r"links\.json: unknown key\(s\) 'extra'"),
        (_document(colour="red"), r"links\.json: links\[0\]: unknown key\(s\) 'colour'"),
        (
            json.dumps({"version": 1, "links": [{"name": "x", "listen_port": 0}]}),
            r"links\.json: links\[0\]: missing key\(s\) 'target_port'",
        ),
        (
            _document(params={"latency_s": -1}),
            r"links\.json: links\[0\]\.params: latency_s=-1 must be a finite number >= 0",
        ),
        (
            _document(params={"latency": 0.04}),
            r"links\.json: links\[0\]\.params: unknown key\(s\) 'latency'",
        ),
        (
            _document(target_host="8.8.8.8"),
            r"links\.json: links\[0\]: link 'x': target_host='8\.8\.8\.8' is outside 127",
        ),
    ],
)
def test_bad_links_files_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(NetemError, match=message):
        links_from_json(text, "links.json")


def test_duplicate_names_and_ports_are_refused() -> None:
    a = LinkSpec(name="a", listen_port=41001, target_port=1)
    with pytest.raises(
        NetemError, match=r"links\[1\]: duplicate link name 'a' \(also links\[0\]\)"
    ):
        links_to_json([a, LinkSpec(name="a", listen_port=41002, target_port=1)])
    with pytest.raises(
        NetemError, match=r"link 'b' listens on 127\.0\.0\.1:41001, already used by link 'a'"
    ):
        links_to_json([a, LinkSpec(name="b", listen_port=41001, target_port=1)])
    # Port 0 means "any free port": several links may ask for it.
    zeros = [LinkSpec(name=n, listen_port=0, target_port=1) for n in ("c", "d")]
    assert len(links_from_json(links_to_json(zeros))) == 2


def test_missing_links_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(NetemError, match=r"nope\.json: cannot read links file"):
        read_links_file(missing)


def test_check_keys_names_unknown_then_missing_keys() -> None:
    check_keys({"a": 1}, {"a", "b"}, {"a"})
    with pytest.raises(NetemError, match=r"^unknown key\(s\) 'c', 'd'$"):
        check_keys({"d": 1, "c": 2}, {"a", "b"}, {"a"})
    with pytest.raises(NetemError, match=r"^body: missing key\(s\) 'a'$"):
        check_keys({"b": 1}, {"a", "b"}, {"a"}, where="body")
