"""deploy export: compose, Kubernetes (+ Chaos Mesh) and Shadow files, held to the real validators.

Compose files go through docker-compose's own ``config`` (no daemon needed), Kubernetes objects
through kubernetes-validate against the Kubernetes schemas, Chaos Mesh objects through the field
check of ``tests/chaos_mesh_schema.py``; the Shadow config is checked field by field.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import networkx as nx
import pytest
import yaml
from kubernetes_validate import utils as kubernetes_validate

from bitcell_sim.deploy import export_deployment, node_program, parse_genesis_time
from bitcell_sim.deploy.chaos import netem_jitter_s
from bitcell_sim.deploy.monitoring import IMAGES
from bitcell_sim.deploy.naming import pod_names
from bitcell_sim.deploy.shadow import SHADOW_EPOCH_UNIX_S, genesis_offset_s
from bitcell_sim.errors import DeployError
from bitcell_sim.monitoring import STACK, MonitoringFiles, check_monitoring
from bitcell_sim.monitoring.alerts import NODE_JOB
from bitcell_sim.monitoring.tools import check_alertmanager, check_prometheus, check_rules
from bitcell_sim.node import NodeSettings, load_config
from bitcell_sim.topology import Topology, load_topology, parse_topology
from bitcell_sim.topology.endpoints import load_endpoints
from bitcell_sim.topology.gml import host_vertices
from tests.chaos_mesh_schema import check_chaos_object

TOPOLOGIES = Path(__file__).parent.parent / "topologies"
# kubernetes_validate reads its schema files again for every manifest (the definitions file
# alone is megabytes): read each once. They do not change while the tests run.
kubernetes_validate.schema_contents = cache(kubernetes_validate.schema_contents)
GENESIS = 1_900_000_000.0
KUBERNETES_VERSION = "1.30"
CASES = ["rc3", "global-56", "rc3-chaos"]
_GO = re.compile(r"^(\d+)(ns|us|ms|s)$")
_GO_SCALE = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def go_seconds(text: str) -> float:
    match = _GO.match(text)
    assert match, text
    return int(match.group(1)) * _GO_SCALE[match.group(2)]


def shadow_seconds(text: str) -> float:
    number, unit = text.split(" ")
    return int(number) * _GO_SCALE[unit]


def topology(name: str) -> Topology:
    return load_topology(TOPOLOGIES / f"{name}.yaml")


def export(topo: Topology, fmt: str, out: Path, **kwargs: Any) -> Path:
    program = kwargs.pop("program", node_program())
    export_deployment(topo, fmt, out, program, GENESIS, **kwargs)
    return out


def topology_ports(topo: Topology) -> set[int]:
    return {p for n in topo.nodes.values() for p in (n.rpc_port, n.p2p_port, n.metrics_port)}


def check_node_configs(folder: Path, topo: Topology, genesis: float) -> None:
    """Each node's config loads as the node reads it, against the exported topology (which is
    the given one; the config names it where the container mounts it)."""
    exported = load_topology(folder / "topology.yaml")
    assert exported == topo
    for node in topo.node_names:
        config = load_config(folder / f"{node}.json")
        # The key file sits beside the config, where the container mounts both.
        key_file = folder / config.p2p_key_file.name
        assert key_file.stat().st_mode & 0o077 == 0
        settings = NodeSettings.resolve(
            config.model_copy(update={"p2p_key_file": key_file}), exported
        )
        assert settings.p2p_keys[node] == settings.p2p_keypair.public_key
        assert settings.name == node
        assert settings.config.genesis_time_unix_s == genesis
        assert settings.peers == {p: (p, topo.nodes[p].p2p_port) for p in topo.peer_map[node]}


# ---- compose ----------------------------------------------------------------------------------


def docker_compose() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (scripts/bootstrap installs it as root)")
    return binary


@pytest.mark.parametrize("name", CASES)
def test_compose_export_validates_and_names_only_topology_ports(name: str, tmp_path: Path) -> None:
    topo = topology(name)
    out = export(topo, "compose", tmp_path / "compose")
    result = subprocess.run(
        [docker_compose(), "-f", str(out / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load((out / "docker-compose.yml").read_text())
    services = document["services"]
    assert list(services) == [*topo.node_names, *STACK]
    nodes = {name: services[name] for name in topo.node_names}
    assert {s["image"] for s in nodes.values()} == {"bitcell-sim-node:0.1.0"}
    assert {services[part]["image"] for part in IMAGES} == set(IMAGES.values())
    assert services["webhook"]["image"] == "bitcell-sim-node:0.1.0"
    for node, service in nodes.items():
        spec = topo.nodes[node]
        assert service["ports"] == [
            f"{spec.rpc_port}:{spec.rpc_port}",
            f"{spec.p2p_port}:{spec.p2p_port}",
            f"{spec.metrics_port}:{spec.metrics_port}",
        ]
        assert f"{spec.metrics_port}/health" in service["healthcheck"]["test"][-1]
        assert service["labels"]["bitcell-sim/region"] == spec.region
    check_node_configs(out / "config", topo, GENESIS)
    assert (out / "README.md").read_text().startswith(f"# {topo.general.name} as a docker-compose")
    check_stack(topo, out / "monitoring", services, metrics_ports={})
    # Every file a service mounts is in the export.
    for service in services.values():
        for mount in service["volumes"]:
            source = mount.split(":")[0]
            assert not source.startswith(".") or (out / source).exists(), mount


def check_stack(
    topo: Topology,
    folder: Path,
    services: dict[str, Any],
    metrics_ports: dict[str, int],
    *,
    with_haproxy: bool = True,
) -> None:
    """The monitoring files pass promtool, amtool and haproxy -c (``with_haproxy=False``: all
    but haproxy -c), and address every node and part by its service name on the topology's ports
    (``metrics_ports``: the container's)."""
    files = MonitoringFiles(folder)
    if with_haproxy:
        check_monitoring(files)
    else:
        for check in (check_prometheus(files.prometheus), check_rules(files.rules),
                      check_alertmanager(files.alertmanager)):  # fmt: skip
            assert check.ok, check.output
    spec = topo.monitoring
    prometheus = yaml.safe_load((folder / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job["static_configs"] for job in prometheus["scrape_configs"]}
    assert [c["targets"] for c in jobs[NODE_JOB]] == [
        [f"{n}:{metrics_ports.get(n, topo.nodes[n].metrics_port)}"] for n in topo.node_names
    ]
    assert jobs["haproxy"][0]["targets"] == [f"haproxy:{spec.haproxy_stats_port}"]
    managers = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert managers == [f"alertmanager:{spec.alertmanager_port}"]
    receivers = yaml.safe_load((folder / "alertmanager.yml").read_text())["receivers"]
    assert {r["webhook_configs"][0]["url"].split("/")[2] for r in receivers} == {
        f"webhook:{spec.webhook_port}"
    }
    haproxy = (folder / "haproxy.cfg").read_text()
    for node in topo.node_names:
        assert f" {node}:{topo.nodes[node].rpc_port} check" in haproxy
    assert f"bind 0.0.0.0:{spec.haproxy_port}" in haproxy
    ports = {
        "prometheus": [spec.prometheus_port],
        "alertmanager": [spec.alertmanager_port],
        "webhook": [spec.webhook_port],
        "haproxy": [spec.haproxy_port, spec.haproxy_stats_port],
    }
    for part, service in services.items():
        if part in ports:
            assert service_ports(service) == ports[part], part


def service_ports(service: dict[str, Any]) -> list[int]:
    """The ports of a compose service or a Kubernetes Service."""
    if "ports" in service and isinstance(service["ports"][0], str):
        return [int(p.split(":")[0]) for p in service["ports"]]
    return [p["port"] for p in service["spec"]["ports"]]


def test_compose_with_the_real_node_uses_its_flags_and_metrics_port(tmp_path: Path) -> None:
    topo = topology("rc3")
    program = node_program("bitcell")
    out = export(topo, "compose", tmp_path / "c", program=program)
    subprocess.run(
        [docker_compose(), "-f", str(out / "docker-compose.yml"), "config", "-q"],
        check=True,
        timeout=60,
    )
    service = yaml.safe_load((out / "docker-compose.yml").read_text())["services"]["us-east-1"]
    assert service["image"] == "bitcell-node:latest"
    assert service["command"] == [
        "bitcell-node", "validator", "--port", "9000", "--rpc-port", "8545",
        "--data-dir", "/data/bitcell", "--key-seed", "bitcell-sim/rc3/node/us-east-1",
    ]  # fmt: skip
    # Metrics on P2P + 2 inside the container, published on the topology's metrics port; the
    # real node has no /health, so the check scrapes /metrics.
    assert service["ports"][2] == "9090:9002"
    assert service["healthcheck"]["test"][-1] == "http://127.0.0.1:9002/metrics"
    assert not (out / "Dockerfile").exists()
    # Prometheus scrapes each node inside the project, on its container's metrics port; the
    # alert receiver is bitcell-sim's, so it is not in the real node's project.
    services = yaml.safe_load((out / "docker-compose.yml").read_text())["services"]
    assert "webhook" not in services
    container_metrics = {n: topo.nodes[n].p2p_port + 2 for n in topo.node_names}
    check_stack(topo, out / "monitoring", services, metrics_ports=container_metrics)
    # The real node has no /health on its RPC port: HAProxy checks it with a JSON-RPC call
    # (tests/test_monitoring_rpc_check.py runs that check against a real node).
    haproxy = (out / "monitoring" / "haproxy.cfg").read_text()
    assert "/health" not in haproxy and "http-check send meth POST uri /rpc" in haproxy


def test_a_command_template_replaces_the_program_command(tmp_path: Path) -> None:
    program = node_program(command="my-node --name {node} --rpc {rpc_port} --config {config}")
    out = export(topology("rc3"), "compose", tmp_path / "c", program=program)
    service = yaml.safe_load((out / "docker-compose.yml").read_text())["services"]["us-west-2"]
    assert service["command"] == [
        "my-node", "--name", "us-west-2", "--rpc", "8548", "--config", "/etc/bitcell/us-west-2.json"
    ]  # fmt: skip


# ---- Kubernetes and Chaos Mesh -----------------------------------------------------------------


def documents(path: Path) -> list[dict[str, Any]]:
    # libyaml's loader: global-56's manifests take seconds with the pure-Python one.
    return [d for d in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader) if d is not None]


@pytest.mark.parametrize("name", CASES)
def test_kubernetes_export_validates_against_the_schemas(name: str, tmp_path: Path) -> None:
    topo = topology(name)
    out = export(topo, "kubernetes", tmp_path / "k8s")
    manifests = documents(out / "bitcell.yaml")
    for manifest in manifests:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    kinds = [m["kind"] for m in manifests]
    regions = [r for r in topo.regions if topo.nodes_in_region(r)]
    assert kinds.count("StatefulSet") == kinds.count("PodDisruptionBudget") == len(regions)
    assert kinds.count("Service") == len(regions) + len(topo.nodes)

    images, container_ports = set(), set()
    for manifest in manifests:
        if manifest["kind"] == "StatefulSet":
            region = manifest["metadata"]["labels"]["bitcell-sim/region"]
            assert manifest["spec"]["replicas"] == len(topo.nodes_in_region(region))
            pod = manifest["spec"]["template"]["spec"]
            terms = pod["affinity"]["nodeAffinity"][
                "requiredDuringSchedulingIgnoredDuringExecution"
            ]
            wanted = topo.regions[region].label or region
            assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == [wanted]
            for container in pod["containers"]:
                images.add(container["image"])
                container_ports |= {p["containerPort"] for p in container["ports"]}
    assert images == {"bitcell-sim-node:0.1.0"}
    assert container_ports == topology_ports(topo)

    services = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Service"}
    pods = pod_names(topo)
    for node, spec in topo.nodes.items():
        ports = services[node]["spec"]["ports"]
        assert [(p["name"], p["port"], p["targetPort"]) for p in ports] == [
            ("rpc", spec.rpc_port, spec.rpc_port),
            ("p2p", spec.p2p_port, spec.p2p_port),
            ("metrics", spec.metrics_port, spec.metrics_port),
        ]
        assert services[node]["spec"]["selector"] == {
            "statefulset.kubernetes.io/pod-name": pods[node]
        }

    config_map = next(m for m in manifests if m["kind"] == "ConfigMap")
    folder = tmp_path / "etc"
    folder.mkdir()
    # The node configs inside the ConfigMap, with the key files of the Secret projected beside
    # them (the pods' config volume), load as the node reads them.
    secret = next(m for m in manifests if m["kind"] == "Secret")
    statefulset = next(m for m in manifests if m["kind"] == "StatefulSet")
    volume = statefulset["spec"]["template"]["spec"]["volumes"][0]
    assert volume["projected"]["sources"] == [
        {"configMap": {"name": config_map["metadata"]["name"]}},
        {"secret": {"name": secret["metadata"]["name"]}},
    ]
    for key, text in {**config_map["data"], **secret["stringData"]}.items():
        (folder / key).write_text(text)
        if key.endswith(".p2p.key"):
            (folder / key).chmod(0o600)
    check_node_configs(folder, topo, GENESIS)

    for path in sorted((out / "chaos").rglob("*.yaml")):
        for obj in documents(path):
            check_chaos_object(obj)

    # The monitoring stack: schemas, then the files of its ConfigMaps through the real tools.
    stack = documents(out / "monitoring.yaml")
    for manifest in stack:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        assert manifest["metadata"]["namespace"] == manifests[0]["metadata"]["name"]
    etc = tmp_path / "monitoring"
    etc.mkdir()
    for manifest in stack:
        if manifest["kind"] == "ConfigMap":
            for key, text in manifest["data"].items():
                (etc / key).write_text(text)
    (etc / "grafana-dashboard.json").write_text("{}")
    stack_services = {m["metadata"]["name"]: m for m in stack if m["kind"] == "Service"}
    assert list(stack_services) == list(STACK)
    # haproxy -c looks up every server's name (56 here, each a DNS miss on this machine: 30 s);
    # global-56's servers pass it in the compose test, and rc3's Kubernetes form passes it here.
    check_stack(topo, etc, stack_services, metrics_ports={}, with_haproxy=name != "global-56")
    deployments = [m for m in stack if m["kind"] == "Deployment"]
    assert [d["metadata"]["name"] for d in deployments] == list(STACK)
    for deployment in deployments:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        expected = IMAGES.get(deployment["metadata"]["name"], "bitcell-sim-node:0.1.0")
        assert container["image"] == expected
        ports = [p["containerPort"] for p in container["ports"]]
        assert ports == service_ports(stack_services[deployment["metadata"]["name"]])


@pytest.mark.parametrize("name", ["rc3", "global-56"])
def test_chaos_mesh_delays_are_the_one_way_latencies(name: str, tmp_path: Path) -> None:
    topo = topology(name)
    out = export(topo, "kubernetes", tmp_path / "k8s")
    chaos = documents(out / "chaos" / "latency.yaml")
    regions = [r for r in topo.regions if topo.nodes_in_region(r)]
    assert len(chaos) == len(regions) ** 2
    seen = set()
    for obj in chaos:
        spec = obj["spec"]
        source = spec["selector"]["labelSelectors"]["bitcell-sim/region"]
        target = spec["target"]["selector"]["labelSelectors"]["bitcell-sim/region"]
        assert spec["action"] == "delay" and spec["direction"] == "to"
        assert go_seconds(spec["delay"]["latency"]) == pytest.approx(
            topo.rtt_matrix_s[(source, target)] / 2, abs=1e-9
        )
        assert go_seconds(spec["delay"]["jitter"]) == pytest.approx(netem_jitter_s(topo))
        seen.add((source, target))
    assert seen == {(a, b) for a in regions for b in regions}


def test_netem_jitter_keeps_the_standard_deviation() -> None:
    # netem's jitter J is uniform in ±J: standard deviation J/√3.
    topo = topology("rc3")  # normal, σ = 2 ms
    assert netem_jitter_s(topo) / 3**0.5 == pytest.approx(0.002, abs=1e-6)


def test_each_fault_becomes_its_chaos_mesh_experiment(tmp_path: Path) -> None:
    topo = topology("rc3-chaos")
    out = export(topo, "kubernetes", tmp_path / "k8s")
    faults = out / "chaos" / "faults"
    pods = pod_names(topo)
    node_down = documents(faults / "fault-01-node-down.yaml")[0]
    assert node_down["kind"] == "PodChaos" and node_down["spec"]["action"] == "pod-failure"
    assert node_down["spec"]["selector"]["pods"] == {"bitcell-rc3-chaos": [pods["us-east-1"]]}
    assert node_down["spec"]["duration"] == "10s"
    region = documents(faults / "fault-02-region-down.yaml")[0]
    assert region["spec"]["selector"]["labelSelectors"]["bitcell-sim/region"] == "us-east"
    (partition,) = documents(faults / "fault-03-partition.yaml")
    cut = set(partition["spec"]["selector"]["pods"]["bitcell-rc3-chaos"])
    other = set(partition["spec"]["target"]["selector"]["pods"]["bitcell-rc3-chaos"])
    side = {pods[n] for n in (*topo.nodes_in_region("eu-central"), "ap-southeast-1")}
    assert cut == side and other == set(pods.values()) - side
    assert partition["spec"]["action"] == "partition"
    latency = documents(faults / "fault-04-added-latency.yaml")[0]
    assert latency["spec"]["delay"]["latency"] == "200ms"
    assert latency["spec"]["selector"]["pods"]["bitcell-rc3-chaos"] == [pods["ap-southeast-1"]]
    assert len(latency["spec"]["target"]["selector"]["pods"]["bitcell-rc3-chaos"]) == 6
    stress = documents(faults / "fault-05-cpu-throttle.yaml")[0]
    assert stress["spec"]["stressors"]["cpu"] == {"workers": 1, "load": 50}

    (workflow,) = documents(out / "chaos" / "scenario.yaml")
    templates = {t["name"]: t for t in workflow["spec"]["templates"]}
    assert templates["scenario"]["children"] == [
        f"fault-0{i}-{k}"
        for i, k in enumerate(
            ["node-down", "region-down", "partition", "added-latency", "cpu-throttle"], 1
        )
    ]
    for index, fault in enumerate(topo.faults, 1):
        serial = templates[templates["scenario"]["children"][index - 1]]
        wait, run = (templates[c] for c in serial["children"])
        assert go_seconds(wait["deadline"]) == fault.start_s
        assert go_seconds(run["deadline"]) == fault.duration_s


def test_the_chaos_field_check_rejects_mistakes() -> None:
    good = {
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "PodChaos",
        "metadata": {"name": "x", "namespace": "n"},
        "spec": {"action": "pod-failure", "mode": "all", "selector": {"namespaces": ["n"]}},
    }
    check_chaos_object(good)
    for bad_spec in (
        {**good["spec"], "action": "pod-explode"},
        {**good["spec"], "mode": "every"},
        {**good["spec"], "duraton": "10s"},
        {**good["spec"], "duration": "10 s"},
        {"action": "pod-failure", "mode": "all"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            check_chaos_object({**good, "spec": bad_spec})


def test_single_cluster_makes_the_region_affinity_a_preference(tmp_path: Path) -> None:
    out = export(topology("rc3"), "kubernetes", tmp_path / "k8s", single_cluster=True)
    sets = [m for m in documents(out / "bitcell.yaml") if m["kind"] == "StatefulSet"]
    for manifest in sets:
        affinity = manifest["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
        assert list(affinity) == ["preferredDuringSchedulingIgnoredDuringExecution"]
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


# ---- Shadow ------------------------------------------------------------------------------------

SHADOW_PROCESS_KEYS = {"path", "args", "start_time", "shutdown_time", "shutdown_signal",
                       "expected_final_state"}  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_shadow_export_hosts_processes_and_graph(name: str, tmp_path: Path) -> None:
    topo = topology(name)
    out = export(topo, "shadow", tmp_path / "shadow")
    config = yaml.safe_load((out / "shadow.yaml").read_text())
    assert set(config) == {"general", "network", "hosts"}
    assert config["network"]["graph"] == {"type": "gml", "file": {"path": "topology.gml"}}
    offset = genesis_offset_s(topo)
    assert shadow_seconds(config["general"]["stop_time"]) == offset + topo.general.duration_s
    graph = nx.parse_gml((out / "topology.gml").read_text(), label="id")
    vertices = host_vertices(topo)
    assert list(config["hosts"]) == list(topo.node_names)
    for node, host in config["hosts"].items():
        assert host["network_node_id"] == vertices[node] and vertices[node] in graph
        for process in host["processes"]:
            assert set(process) <= SHADOW_PROCESS_KEYS
            assert process["args"][-1] == f"../../../config/{node}.json"
        assert host["processes"][-1]["expected_final_state"] == "running"
    for a, b, edge in graph.edges(data=True):
        ra, rb = graph.nodes[a]["label"], graph.nodes[b]["label"]
        assert shadow_seconds(edge["latency"]) == pytest.approx(topo.rtt_matrix_s[(ra, rb)] / 2)
    check_node_configs(out / "config", topo, SHADOW_EPOCH_UNIX_S + offset)


def test_shadow_stops_and_restarts_nodes_at_the_fault_times(tmp_path: Path) -> None:
    topo = topology("rc3-chaos")  # us-east-1 down 60-70 s and (its region) 120-135 s
    out = export(topo, "shadow", tmp_path / "s")
    processes = yaml.safe_load((out / "shadow.yaml").read_text())["hosts"]["us-east-1"]["processes"]
    offset = genesis_offset_s(topo)
    windows = [
        (shadow_seconds(p["start_time"]), shadow_seconds(p.get("shutdown_time", "0 s")))
        for p in processes
    ]
    assert windows == [(1.0, offset + 60), (offset + 70, offset + 120), (offset + 135, 0.0)]
    assert processes[0]["shutdown_signal"] == "SIGKILL"
    readme = (out / "README.md").read_text()
    assert "network partition (partition at 180 s)" in readme


# ---- names across formats, bad input ----------------------------------------------------------


def test_names_and_ports_agree_across_the_three_formats(tmp_path: Path) -> None:
    topo = topology("rc3")
    compose = yaml.safe_load(
        (export(topo, "compose", tmp_path / "c") / "docker-compose.yml").read_text()
    )["services"]
    manifests = documents(export(topo, "kubernetes", tmp_path / "k") / "bitcell.yaml")
    shadow = yaml.safe_load((export(topo, "shadow", tmp_path / "s") / "shadow.yaml").read_text())
    services = {
        m["metadata"]["name"]: m
        for m in manifests
        if m["kind"] == "Service" and "bitcell-sim/node" in m["metadata"]["labels"]
    }
    stack = {
        m["metadata"]["name"]: m
        for m in documents(tmp_path / "k" / "monitoring.yaml")
        if m["kind"] == "Service"
    }
    for part in STACK:
        assert service_ports(compose.pop(part)) == service_ports(stack[part])
        assert compose_labels(tmp_path / "c", part) == stack[part]["metadata"]["labels"]
    assert list(compose) == list(services) == list(shadow["hosts"]) == list(topo.node_names)
    # The endpoints templates name every node on its RPC and metrics ports.
    for folder in (tmp_path / "c", tmp_path / "k"):
        endpoints = load_endpoints(folder / "endpoints.yaml", topo)
        assert endpoints.genesis_time_unix_s == GENESIS
        for node, urls in endpoints.nodes.items():
            assert urls.rpc_url.endswith(f":{topo.nodes[node].rpc_port}")
            assert urls.metrics_url == urls.rpc_url.rsplit(":", 1)[0] + (
                f":{topo.nodes[node].metrics_port}/metrics"
            )
    for node in topo.node_names:
        host_ports = [int(p.split(":")[0]) for p in compose[node]["ports"]]
        assert host_ports == [p["port"] for p in services[node]["spec"]["ports"]]
        assert compose[node]["labels"] == services[node]["metadata"]["labels"]


def compose_labels(folder: Path, service: str) -> dict[str, str]:
    labels: dict[str, str] = yaml.safe_load((folder / "docker-compose.yml").read_text())[
        "services"
    ][service]["labels"]
    return labels


def test_names_that_are_not_dns_labels_are_refused(tmp_path: Path) -> None:
    topo = parse_topology(
        """
regions: {Mars_1: {rtt: {Mars_1: 2 ms}}}
nodes: {Node_A: {region: Mars_1}, b: {region: Mars_1}}
"""
    )
    with pytest.raises(DeployError, match=r"node 'Node_A', region 'Mars_1'"):
        export(topo, "compose", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    taken = parse_topology("regions: {a: {rtt: {a: 2 ms}}}\nnodes: {haproxy: {region: a}}")
    with pytest.raises(DeployError, match="haproxy are taken by the monitoring services"):
        export(taken, "kubernetes", tmp_path / "x")


def test_a_non_empty_folder_is_refused_and_kept(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(DeployError, match="is not empty"):
        export(topology("rc3"), "compose", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_the_real_node_metrics_port_clash_is_refused(tmp_path: Path) -> None:
    topo = parse_topology(
        """
regions: {a: {rtt: {a: 2 ms}}}
nodes: {n1: {region: a, p2p_port: 21000, rpc_port: 21002, metrics_port: 22000}}
"""
    )
    with pytest.raises(DeployError, match=r"P2P port \+ 2.*n1"):
        export(topo, "compose", tmp_path / "x", program=node_program("bitcell"))


def test_genesis_time_parsing() -> None:
    assert parse_genesis_time("2030-01-01T00:00:00Z", 0) == 1_893_456_000.0
    assert parse_genesis_time("1893456000", 0) == 1_893_456_000.0
    assert parse_genesis_time(None, 1_000_000_000.5) == 1_000_000_320.0
    with pytest.raises(DeployError, match="bad genesis time 'soon'"):
        parse_genesis_time("soon", 0)


def bitcell_sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bitcell_sim", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_cli_export_and_its_errors(tmp_path: Path) -> None:
    rc3 = str(TOPOLOGIES / "rc3-chaos.yaml")
    ok = bitcell_sim("deploy", "export", rc3, str(tmp_path / "s"), "--format", "shadow")
    assert ok.returncode == 0, ok.stderr
    assert "wrote 18 files of the shadow export" in ok.stdout  # 4 + a config and a key per node
    assert "not expressible in shadow: network partition" in ok.stderr
    for args, message in (
        (["--format", "helm"], "unknown format 'helm'"),
        (["--program", "geth"], "unknown node program 'geth'"),
        (["--command", "node {nope}"], "bad --command"),
        (["--format", "shadow", "--program", "bitcell"], "devnet node program only"),
    ):
        bad = bitcell_sim("deploy", "export", rc3, str(tmp_path / "x"), *args)
        assert bad.returncode == 1 and message in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
    assert not (tmp_path / "x").exists()
