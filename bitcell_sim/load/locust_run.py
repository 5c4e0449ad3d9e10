"""Running a load test inside Locust (imports locust: only locustfiles import this).

Importing this module registers the load's command-line options (``--topology``, ``--tps``,
``--duration``, ``--run-dir``, ``--senders``, ...) and event listeners. A :class:`Controller` per
Locust process builds the :class:`~bitcell_sim.load.plan.LoadPlan`, runs the process's
:class:`~bitcell_sim.load.session.LoadSession` and its watcher greenlet, and, on the master or a
local runner, writes the run's records, summary and meta. In distributed mode the master sends
each worker its rank and the plan (``bitcell_plan``); workers send their records back in batches
(``bitcell_records``, ``bitcell_done``). :class:`WorkloadShape` sets the user count from the plan
and ends the test once every process has drained or one saw the chain stall.
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

import gevent
from gevent.event import Event
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from locust.shape import LoadTestShape

from bitcell_sim.errors import BitcellSimError, LoadError
from bitcell_sim.load.output import prepare_run_dir, write_outputs
from bitcell_sim.load.pacer import ARRIVALS
from bitcell_sim.load.plan import (
    DEFAULT_STALL_ROUNDS,
    HOST_REGION,
    SENDERS,
    Endpoint,
    LoadPlan,
    parse_seconds,
    plan_from_host,
    plan_from_topology,
)
from bitcell_sim.load.session import END_STOPPED, LoadSession, recipient_key
from bitcell_sim.load.summary import format_summary, summarize
from bitcell_sim.load.txlog import TxRecord
from bitcell_sim.protocol.rpc_client import RpcClient
from bitcell_sim.results.run_folder import new_run_id
from bitcell_sim.topology import Topology, load_topology
from bitcell_sim.topology.units import parse_rate

logger = logging.getLogger("bitcell_sim.load")
# The watcher's httpx client would log every poll at INFO.
logging.getLogger("httpx").setLevel(logging.WARNING)

MSG_PLAN = "bitcell_plan"
MSG_END = "bitcell_end"
MSG_RECORDS = "bitcell_records"
MSG_DONE = "bitcell_done"
#: Records per message from a worker to the master.
BATCH_RECORDS = 2000
#: The schedule starts this long after the test: users spawn (and workers get their plan) first.
START_DELAY_S = 1.0
#: After the drain time, the shape waits this much longer for workers' records, then ends.
END_GRACE_S = 30.0
#: How long a stopping master waits for records still on their way from workers.
STOP_WAIT_S = 15.0

EXIT_OK = 0
EXIT_STALL = 3
EXIT_INCOMPLETE = 4

_controllers: WeakKeyDictionary[Environment, Controller] = WeakKeyDictionary()


def controller_of(environment: Environment) -> Controller | None:
    return _controllers.get(environment)


# ---- options -------------------------------------------------------------------------------


@events.init_command_line_parser.add_listener
def add_options(parser: Any) -> None:
    group = parser.add_argument_group("bitcell-sim load")
    group.add_argument(
        "--topology",
        default=None,
        env_var="LOCUST_TOPOLOGY",
        help="topology YAML: one user class per region, pinned to its nodes' RPC endpoints",
    )
    group.add_argument("--tps", default=None, help="target TPS (default: the topology's workload)")
    group.add_argument(
        "--duration", default=None, help="load duration, e.g. 60 or '2 min' (default: workload)"
    )
    group.add_argument(
        "--run-dir", default=None, help="run folder for records (default results/<run-id>)"
    )
    group.add_argument(
        "--senders", default=None, choices=SENDERS, help="fresh key per tx, or funded accounts"
    )
    group.add_argument(
        "--arrival", default=None, choices=ARRIVALS, help="override the workload's arrivals"
    )
    group.add_argument(
        "--load-users",
        type=int,
        default=None,
        help="fixed number of users (default: enough for the rate)",
    )
    group.add_argument(
        "--genesis-unix",
        type=float,
        default=None,
        help="genesis time (Unix s): record times since genesis instead of since the run start",
    )
    group.add_argument("--network", default=None, help="network name of the funded accounts")
    group.add_argument(
        "--round", default=None, help="round length for a bare --host (default 15 s)"
    )
    group.add_argument(
        "--stall-rounds",
        type=float,
        default=DEFAULT_STALL_ROUNDS,
        help="rounds without a new block while txs are pending that count as a stall",
    )
    group.add_argument("--drain", default=None, help="time to wait for confirmations at the end")
    group.add_argument("--poll-interval", default=None, help="watcher poll interval")
    group.add_argument(
        "--watch-node",
        default=None,
        help="node the watcher follows, or 'all' (default with a topology: a tx is confirmed "
        "when the node it was sent to has its block)",
    )
    group.add_argument("--seed", type=int, default=None, help="seed of the arrival schedule")


def _seconds(value: Any) -> float | None:
    return None if value in (None, "") else parse_seconds(value)


def build_plan(options: Any, host: str | None) -> tuple[LoadPlan, Topology | None]:
    """The plan from Locust's parsed options and host (``--host`` wins over the topology's)."""
    topology = load_topology(Path(options.topology)) if options.topology else None
    tps = None
    if options.tps not in (None, ""):
        try:
            tps = parse_rate(options.tps if " " in str(options.tps) else float(options.tps))
        except ValueError as exc:
            raise LoadError(f"--tps {options.tps!r} is not a rate: {exc}") from None
    common: dict[str, Any] = {
        "tps": tps,
        "duration_s": _seconds(options.duration),
        "senders": options.senders,
        "arrival": options.arrival,
        "users": options.load_users,
        "poll_interval_s": _seconds(options.poll_interval),
        "stall_rounds": options.stall_rounds,
        "drain_s": _seconds(options.drain),
        "seed": options.seed,
        "genesis_unix_s": options.genesis_unix,
    }
    if host:
        plan = plan_from_host(
            host,
            topology=topology,
            network=options.network,
            round_s=_seconds(options.round),
            **common,
        )
    elif topology is not None:
        plan = plan_from_topology(topology, watch_node=options.watch_node, **common)
        if options.network:
            plan = plan.with_overrides(network=options.network)
    else:
        raise LoadError("give --topology FILE or --host URL (the RPC endpoint to load)")
    return plan, topology


# ---- the controller ------------------------------------------------------------------------


class Controller:
    """The load run's state in one Locust process (local, master or worker)."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        runner = environment.runner
        self.role = (
            "master"
            if isinstance(runner, MasterRunner)
            else "worker"
            if isinstance(runner, WorkerRunner)
            else "local"
        )
        self.options = environment.parsed_options
        self.plan: LoadPlan | None = None
        self.topology: Topology | None = None
        self.session: LoadSession | None = None
        self._ready = Event()
        self._endpoints: defaultdict[str, Iterator[int]] = defaultdict(itertools.count)
        self._sent = False
        self.runs = 0
        self.run_dir: Path | None = None
        self.start_unix_s: float | None = None
        # Master: which worker has which rank, and what came back from them.
        self.ranks: dict[str, int] = {}
        self.collected: list[TxRecord] = []
        self.lags_s: list[float] = []
        self.done: dict[int, dict[str, Any]] = {}
        self._end_sent = False

    # ---- setup ------------------------------------------------------------------------------

    def configure(self) -> None:
        """Build the plan (local/master); a bad option ends the process with a message."""
        if self.role == "worker" or self.options is None:
            return
        self.run_dir = Path(self.options.run_dir) if self.options.run_dir else None
        if not (self.options.topology or self.environment.host) and not self.options.headless:
            return  # the web UI asks for the host; the plan is built at start
        self.plan, self.topology = build_plan(self.options, self.environment.host)

    def register_messages(self) -> None:
        runner = self.environment.runner
        assert runner is not None
        if self.role == "master":
            runner.register_message(MSG_RECORDS, self._on_records)
            runner.register_message(MSG_DONE, self._on_done)
        elif self.role == "worker":
            runner.register_message(MSG_PLAN, self._on_plan)
            runner.register_message(MSG_END, self._on_end)

    # ---- what users ask -----------------------------------------------------------------------

    def wait_session(self, timeout_s: float) -> LoadSession | None:
        self._ready.wait(timeout_s)
        return self.session

    def next_endpoint(self, region: str) -> Endpoint | None:
        plan = self.session.plan if self.session is not None else self.plan
        if plan is None:
            return None
        endpoints = plan.endpoints_in(region)
        if not endpoints:
            raise LoadError(
                f"user class of region {region!r} has no endpoint in the plan "
                f"(regions: {', '.join(plan.regions)}); start workers with the master's "
                "--topology/--host"
            )
        return endpoints[next(self._endpoints[region]) % len(endpoints)]

    def recipient_address(self) -> str:
        plan = self.session.plan if self.session is not None else self.plan
        return "0x" + recipient_key(plan.network if plan else "bitcell").hex()

    # ---- test lifecycle ---------------------------------------------------------------------

    def _reset(self) -> None:
        self.session = None
        self._ready.clear()
        self._sent = False
        self.collected, self.lags_s, self.done, self.ranks = [], [], {}, {}
        self._end_sent = False

    def on_test_start(self) -> None:
        if self.role == "worker":
            return  # the master's plan message (sent before the spawn) starts the session
        self.runs += 1
        self._reset()
        host = (self.environment.host or "").rstrip("/")
        host_mode = self.plan is None or self.plan.regions == (HOST_REGION,)
        changed = self.plan is None or self.plan.endpoints[0].url != host
        if self.options is not None and host and host_mode and changed:
            # The web UI may give or change the host after start-up.
            self.plan, self.topology = build_plan(self.options, host)
        if self.plan is None:
            raise LoadError("give --topology FILE or --host URL (the RPC endpoint to load)")
        assert self.plan is not None
        if self.role == "local":
            self.start_unix_s = time.time() + START_DELAY_S
            self._start_session(self.plan, 0, 1, self.start_unix_s)
            return
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)
        workers = sorted(
            runner.clients.ready + runner.clients.spawning + runner.clients.running,
            key=lambda w: runner.get_worker_index(w.id),
        )
        if not workers:
            raise LoadError("no Locust workers are connected to the master")
        self.start_unix_s = time.time() + START_DELAY_S
        self.ranks = {w.id: rank for rank, w in enumerate(workers)}
        for worker_id, rank in self.ranks.items():
            data = {
                "plan": self.plan.to_dict(),
                "rank": rank,
                "count": len(workers),
                "start_unix_s": self.start_unix_s,
            }
            runner.send_message(MSG_PLAN, data, client_id=worker_id)
        logger.info("sent the load plan to %d workers", len(workers))

    def _start_session(self, plan: LoadPlan, rank: int, count: int, start_unix_s: float) -> None:
        timeout_s = min(5.0, max(plan.round_s, 1.0))
        readers = {e.node: RpcClient(e.url, timeout_s=timeout_s) for e in plan.watched}
        session = LoadSession(plan, readers, rank=rank, count=count, start_unix_s=start_unix_s)
        self.session = session
        self._ready.set()
        gevent.spawn(self._watch, session, list(readers.values()))

    def _watch(self, session: LoadSession, readers: list[RpcClient]) -> None:
        try:
            while not session.ended:
                try:
                    if session.tick() is not None:
                        break
                except Exception:  # a watcher bug must not silently end the measurement
                    logger.exception("watcher poll failed")
                gevent.sleep(session.plan.poll_interval_s)
        finally:
            for reader in readers:
                reader.close()
        self._session_ended(session)

    def _session_ended(self, session: LoadSession) -> None:
        status = session.status
        if status.stall is not None:
            logger.error(status.stall.message())
        logger.info(
            "process %d finished (%s): %d records",
            session.rank,
            status.end_reason,
            len(session.log),
        )
        if self.role == "worker":
            self._send_results(session)

    def finished(self) -> bool:
        """True when the run is over everywhere: the shape then ends the test."""
        if self.role == "master":
            return bool(self.ranks) and len(self.done) >= len(self.ranks)
        return self.session is not None and self.session.ended

    def on_test_stop(self) -> None:
        if self.role == "worker":
            if self.session is not None:
                self.session.end(END_STOPPED)
                self._send_results(self.session)
            return
        if self.role == "master" and self.ranks and not self.finished():
            self._broadcast_end(END_STOPPED)
            deadline = time.time() + STOP_WAIT_S
            while not self.finished() and time.time() < deadline:
                gevent.sleep(0.2)
        if self.role == "local" and self.session is not None:
            self.session.end(END_STOPPED)
        self._write()

    # ---- distributed messages ---------------------------------------------------------------

    def _on_plan(self, environment: Environment, msg: Any) -> None:
        data = msg.data
        plan = LoadPlan.from_dict(data["plan"])
        self._reset()
        self.plan = plan
        logger.info("worker rank %d of %d got the load plan", data["rank"], data["count"])
        self._start_session(plan, int(data["rank"]), int(data["count"]), data["start_unix_s"])

    def _on_end(self, environment: Environment, msg: Any) -> None:
        if self.session is not None:
            self.session.end(str(msg.data.get("reason", END_STOPPED)))

    def _send_results(self, session: LoadSession) -> None:
        if self._sent:
            return
        self._sent = True
        runner = self.environment.runner
        assert runner is not None
        rows = [r.as_tuple() for r in session.log.records]
        lags = session.status.lags_s
        batches = max(1, -(-max(len(rows), len(lags)) // BATCH_RECORDS))
        for i in range(batches):
            part = slice(i * BATCH_RECORDS, (i + 1) * BATCH_RECORDS)
            runner.send_message(
                MSG_RECORDS, {"rank": session.rank, "records": rows[part], "lags": lags[part]}
            )
        runner.send_message(
            MSG_DONE,
            {"rank": session.rank, "records": len(rows), "status": self._status_of(session)},
        )

    def _status_of(self, session: LoadSession) -> dict[str, Any]:
        status = session.status.to_dict()
        status["run_start_s"] = session.run_start_s
        status["origin_unix_s"] = session.origin_unix_s
        return status

    def _on_records(self, environment: Environment, msg: Any) -> None:
        self.collected += [TxRecord.from_tuple(row) for row in msg.data["records"]]
        self.lags_s += msg.data["lags"]

    def _on_done(self, environment: Environment, msg: Any) -> None:
        rank = int(msg.data["rank"])
        self.done[rank] = msg.data["status"]
        if msg.data["status"].get("stall") and not self._end_sent:
            # One process saw the chain stall: end everyone's run now, records included.
            self._broadcast_end("stall elsewhere")

    def _broadcast_end(self, reason: str) -> None:
        self._end_sent = True
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)
        for worker_id, rank in self.ranks.items():
            if rank not in self.done:
                runner.send_message(MSG_END, {"reason": reason}, client_id=worker_id)

    # ---- results ----------------------------------------------------------------------------

    def _write(self) -> None:
        plan = self.plan
        if plan is None or self.start_unix_s is None:
            return
        if self.role == "local":
            if self.session is None:
                return
            records = self.session.log.records
            statuses = [self._status_of(self.session)]
            lags = self.session.status.lags_s
            origin_unix_s = self.session.origin_unix_s
        else:
            records, lags = self.collected, self.lags_s
            statuses = [self.done[r] for r in sorted(self.done)]
            origin_unix_s = plan.genesis_unix_s or self.start_unix_s
        run_start_s = self.start_unix_s - origin_unix_s
        time_origin = "genesis" if plan.genesis_unix_s is not None else "run_start"
        summary = summarize(
            {
                "submit_s": [r.submit_s for r in records],
                "accepted": [r.accepted for r in records],
                "confirm_s": [r.confirm_s for r in records],
                "rpc_latency_s": [r.rpc_latency_s for r in records],
                "reject_reason": [r.reject_reason for r in records],
            },
            plan.profile,
            run_start_s,
            statuses,
            lags,
            time_origin,
        )
        missing = sorted(set(self.ranks.values()) - set(self.done)) if self.role == "master" else []
        summary["missing_processes"] = missing
        run_dir = self._run_dir(plan)
        meta = {
            "kind": "load",
            "mode": self.role,
            "processes": len(statuses) if self.role == "local" else len(self.ranks),
            "plan": plan.to_dict(),
            "time_origin": time_origin,
            "origin_unix_s": origin_unix_s,
            "run_start_unix_s": self.start_unix_s,
            "watch_node": plan.watch_node,
            "argv": sys.argv,
        }
        try:
            prepare_run_dir(run_dir, self.topology)
            paths = write_outputs(run_dir, records, summary, meta)
        except (OSError, BitcellSimError) as exc:
            logger.error("could not write the load results to %s: %s", run_dir, exc)
            self.environment.process_exit_code = EXIT_INCOMPLETE
            return
        print(f"load run written to {paths['records'].parent}", flush=True)
        print(format_summary(summary), flush=True)
        if summary["stall"]:
            self.environment.process_exit_code = EXIT_STALL
        elif missing:
            logger.error("no records came back from worker rank(s) %s", missing)
            self.environment.process_exit_code = EXIT_INCOMPLETE
        else:
            self.environment.process_exit_code = EXIT_OK

    def _run_dir(self, plan: LoadPlan) -> Path:
        if self.run_dir is None:
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
            name = (
                new_run_id(self.topology, "load")
                if self.topology is not None
                else f"{plan.network}-load-{stamp}"
            )
            self.run_dir = Path("results") / name
        if self.runs <= 1:
            return self.run_dir
        # A second run from the web UI goes beside the first.
        return self.run_dir.with_name(f"{self.run_dir.name}-{self.runs}")


# ---- event listeners -----------------------------------------------------------------------


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    controller = Controller(environment)
    try:
        controller.configure()
    except BitcellSimError as exc:
        logger.error("%s", exc)
        sys.exit(1)
    _controllers[environment] = controller
    controller.register_messages()


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    controller = controller_of(environment)
    if controller is not None:
        controller.on_test_start()


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    controller = controller_of(environment)
    if controller is not None:
        controller.on_test_stop()


class WorkloadShape(LoadTestShape):
    """Users for the plan's rate (ahead of a ramp or spike); ends when the run is over."""

    def __init__(self) -> None:
        super().__init__()
        self._users = 0

    def tick(self) -> tuple[int, float] | None:
        runner = self.runner
        controller = controller_of(runner.environment) if runner is not None else None
        if controller is None or controller.plan is None:
            return None
        plan = controller.plan
        if controller.finished():
            return None
        t = self.get_run_time()
        if t > plan.duration_s + plan.drain_s + END_GRACE_S:
            logger.warning("load run still not finished %.0f s after the drain time; ending", t)
            return None
        if t < plan.duration_s or not self._users:
            processes = runner.worker_count if isinstance(runner, MasterRunner) else 1
            self._users = plan.users_at(t, max(processes, 1))
        # Idle users stay until the end so transactions still in flight are recorded.
        return self._users, float(max(self._users, 1))
