"""Running a load test inside Locust (imports locust: only locustfiles import this).

Importing this module registers the load's options (``--topology``, ``--tps``, ``--duration``,
``--run-dir``, ...) and event listeners. A :class:`Controller` per Locust process builds the
:class:`~bitcell_sim.load.plan.LoadPlan`, runs the process's :class:`~bitcell_sim.load.session.
LoadSession` and watcher greenlet and, on the master or a local runner, writes the run folder.
Distributed, the master sends each worker its rank and the plan; workers send records back.
:class:`WorkloadShape` sizes the users (Locust's ``-u``/``-r``/``-t`` honoured) and ends the run.
"""

from __future__ import annotations

import logging
import sys
import time
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
from bitcell_sim.load.output import LOAD_DIR, prepare_run_dir, write_outputs
from bitcell_sim.load.plan import DEFAULT_STALL_ROUNDS, SENDERS, LoadPlan, plan_from_options
from bitcell_sim.load.replay import replay_table, write_replay
from bitcell_sim.load.session import END_STOPPED, LoadSession, recipient_key
from bitcell_sim.load.summary import format_summary, summarize
from bitcell_sim.load.txlog import TxRecord
from bitcell_sim.protocol.rpc_client import RpcClient
from bitcell_sim.results.run_folder import new_run_id
from bitcell_sim.topology import ARRIVAL_PROCESSES, Topology

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
#: Users added for submissions stuck on slow nodes are capped at this multiple of the sizing.
MAX_USERS_FACTOR = 5

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
        help="topology YAML: replay its arrival schedule to its nodes' RPC endpoints",
    )
    group.add_argument(
        "--tps", default=None, help="constant target TPS (default: the workload; host: 100)"
    )
    group.add_argument(
        "--duration",
        default=None,
        help="load duration, e.g. 60 or '2 min' (default: the workload; host: 60 s, or -t)",
    )
    group.add_argument(
        "--run-dir", default=None, help="run folder for records (default results/<run-id>)"
    )
    group.add_argument(
        "--senders", default=None, choices=SENDERS, help="fresh key per tx, or funded accounts"
    )
    group.add_argument(
        "--arrival",
        default=None,
        choices=ARRIVAL_PROCESSES,
        help="override the workload's arrivals",
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
    group.add_argument(
        "--seed", type=int, default=None, help="seed of the arrival schedule (the topology's)"
    )


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
        # Locust's own -u and -r, as given on the command line (read now: headless mode later
        # fills in defaults the shape must not mistake for a choice).
        self.fixed_users: int | None = getattr(self.options, "num_users", None)
        self.spawn_rate: float | None = getattr(self.options, "spawn_rate", None)
        self.plan: LoadPlan | None = None
        self.topology: Topology | None = None
        self.session: LoadSession | None = None
        self._ready = Event()
        self._sent = False
        self.runs = 0
        self.run_dir: Path | None = None
        self.start_unix_s: float | None = None
        # Master: which worker has which rank, and what came back from them.
        self.ranks: dict[str, int] = {}
        self.collected: list[TxRecord] = []
        self.sent: list[tuple[int, str]] = []
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
        self.plan, self.topology = plan_from_options(
            self.options, self.environment.host, self.run_time_s
        )

    @property
    def run_time_s(self) -> float | None:
        """Locust's ``-t`` (or the web UI's run time): the run ends then at the latest."""
        value = getattr(self.options, "run_time", None)
        return float(value) if value else None

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

    def recipient_address(self) -> str:
        plan = self.session.plan if self.session is not None else self.plan
        return "0x" + recipient_key(plan.network if plan else "bitcell").hex()

    # ---- test lifecycle ---------------------------------------------------------------------

    def _reset(self) -> None:
        self.session = None
        self._ready.clear()
        self._sent = False
        self.collected, self.sent, self.lags_s, self.done, self.ranks = [], [], [], {}, {}
        self._end_sent = False

    def on_test_start(self) -> None:
        if self.role == "worker":
            return  # the master's plan message (sent before the spawn) starts the session
        self.runs += 1
        self._reset()
        host = (self.environment.host or "").rstrip("/")
        host_mode = self.plan is None or self.plan.is_host
        changed = self.plan is None or self.plan.endpoints[0].url != host
        if self.options is not None and host and host_mode and changed:
            # The web UI may give or change the host after start-up.
            self.plan, self.topology = plan_from_options(self.options, host, self.run_time_s)
        if self.plan is None:
            raise LoadError("give --topology FILE or --host URL (the RPC endpoint to load)")
        assert self.plan is not None
        self.start_unix_s = self.plan.start_unix_s(time.time() + START_DELAY_S)
        if self.role == "local":
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
        sent = session.sent
        batches = max(1, -(-max(len(rows), len(lags), len(sent)) // BATCH_RECORDS))
        for i in range(batches):
            part = slice(i * BATCH_RECORDS, (i + 1) * BATCH_RECORDS)
            runner.send_message(
                MSG_RECORDS,
                {
                    "rank": session.rank,
                    "records": rows[part],
                    "lags": lags[part],
                    "sent": sent[part],
                },
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
        self.sent += [(int(index), str(tx_id)) for index, tx_id in msg.data["sent"]]

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
            sent = self.session.sent
            origin_unix_s = self.session.origin_unix_s
            arrivals = self.session.arrivals
        else:
            records, lags, sent = self.collected, self.lags_s, self.sent
            statuses = [self.done[r] for r in sorted(self.done)]
            origin_unix_s = plan.genesis_unix_s or self.start_unix_s
            arrivals = plan.workload.draw()
        run_start_s = self.start_unix_s - origin_unix_s
        time_origin = "genesis" if plan.genesis_unix_s is not None else "run_start"
        # Scheduled time (since genesis) + shift = due time on the records' clock.
        shift_s = run_start_s - plan.origin_s
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
            scheduled_s=arrivals.submit_s - plan.origin_s,
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
            "replay_shift_s": shift_s,
            "watch_node": plan.watch_node,
            "argv": sys.argv,
        }
        try:
            folder = prepare_run_dir(run_dir, self.topology)
            paths = write_outputs(run_dir, records, summary, meta)
            write_replay(folder.path / LOAD_DIR, replay_table(arrivals, shift_s, sent))
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
    """Users for the plan's rate, ahead of a ramp or spike, plus one for every submission stuck
    on a slow node (so every node's schedule holds); ends when the run is over.

    Locust's common options are honoured: ``-u`` fixes the user count, ``-r`` the spawn rate and
    ``-t`` ends the run at that time at the latest (``--load-users`` fixes the count too).
    """

    use_common_options = True

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
        run_time_s = controller.run_time_s
        if run_time_s is not None and self.get_run_time() >= run_time_s:
            logger.info("run time limit (-t %.0f s) reached; ending", run_time_s)
            return None
        start_unix_s = controller.start_unix_s or time.time()
        t = time.time() - start_unix_s  # load time: < 0 until the schedule starts
        if t > plan.duration_s + plan.drain_s + END_GRACE_S:
            logger.warning("load run still not finished %.0f s after the drain time; ending", t)
            return None
        if controller.fixed_users:
            self._users = controller.fixed_users
        elif plan.users is not None:
            self._users = plan.users
        elif t < plan.duration_s or not self._users:
            processes = runner.worker_count if isinstance(runner, MasterRunner) else 1
            sized = plan.users_at(t, max(processes, 1))
            session = controller.session
            stuck = session.stuck(plan.user_budget_s) if session is not None else 0
            self._users = min(sized + stuck, MAX_USERS_FACTOR * sized)
        # Idle users stay until the end so transactions still in flight are recorded.
        spawn_rate = controller.spawn_rate or float(max(self._users, 1))
        return self._users, spawn_rate
