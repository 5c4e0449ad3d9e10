"""Locust users that speak BitCell JSON-RPC (imports locust: only locustfiles import this).

:class:`JsonRpcUser` (abstract, on ``FastHttpUser``) has ``call(method, params)``: one POST to
``<rpc_base>/rpc``, named by method in Locust's stats, a JSON-RPC ``error`` inside HTTP 200
marked as a failure. :class:`BitcellUser` adds the load's work: ``submit_transaction()`` (takes
the next due slot of the schedule, waits for it, signs, sends it to the slot's node, records) and
``read(method)``. ``declare_users`` turns an abstract user with tasks into the runnable class.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gevent
from locust import constant
from locust.contrib.fasthttp import FastHttpUser

from bitcell_sim.errors import RpcError
from bitcell_sim.load.locust_run import controller_of
from bitcell_sim.load.session import LoadSession
from bitcell_sim.protocol.jsonrpc import Method
from bitcell_sim.protocol.rpc_calls import build_request, parse_response, preview
from bitcell_sim.topology import load_topology

JSON_HEADERS = {"Content-Type": "application/json"}
#: How long an idle user (schedule done, or no session yet) sleeps between checks.
IDLE_S = 0.5


class JsonRpcUser(FastHttpUser):
    """A user that sends JSON-RPC 2.0 calls to ``<endpoint>/rpc``."""

    abstract = True
    network_timeout = 10.0
    connection_timeout = 5.0
    # The node's URL; set per user (``endpoint``) or taken from the class ``host``.
    rpc_base: str | None = None

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._ids = itertools.count(1)

    def call(self, method: str, params: list[Any] | None = None, name: str | None = None) -> Any:
        """Call ``method`` at this user's node; return its result or raise ``RpcError`` (code
        None: no JSON-RPC).

        The request is named ``method`` in Locust's stats; an ``error`` answer, an HTTP status
        other than 200 and no answer at all are marked as failures there.
        """
        base = (self.rpc_base or self.host or "").rstrip("/")
        body = json.dumps(build_request(method, params, next(self._ids)))
        error: RpcError | None = None
        with self.client.post(
            base + "/rpc", data=body, headers=JSON_HEADERS, name=name or method, catch_response=True
        ) as response:
            status = response.status_code or 0
            if status != 200:
                if status:
                    message = f"HTTP {status} from {base}: {preview(response.text or '')}"
                else:
                    message = f"no answer from {base}: {response.error!r}"
                error = RpcError(None, message, {"status": status})
                response.failure(message)
            else:
                try:
                    result = parse_response(response.content or b"")
                except RpcError as exc:
                    error = exc
                    response.failure(failure_text(exc))
        if error is not None:
            raise error
        return result


def failure_text(error: RpcError) -> str:
    """How Locust lists a JSON-RPC error: code and message, numbers masked so kinds group."""
    masked = re.sub(r"\d+", "N", error.message)
    return f"{error.code}: {masked}"


class BitcellUser(JsonRpcUser):
    """A JSON-RPC user of a bitcell-sim load run: transactions on schedule, reads on the side.

    A user is bound to no node: each transaction goes to the node its schedule slot names, so a
    slow node holds the users waiting on it while the others keep every other node's schedule.
    Reads go to the node of the user's last transaction.
    """

    abstract = True
    wait_time = constant(0)

    def _session(self) -> LoadSession | None:
        controller = controller_of(self.environment)
        session = controller.wait_session(IDLE_S) if controller is not None else None
        if session is None or session.load_over:
            gevent.sleep(IDLE_S)
            return None
        if self.rpc_base is None:
            self.rpc_base = session.plan.endpoints[0].url
        return session

    def submit_transaction(self) -> None:
        """Wait for the next due slot, then sign and send its transaction and record it."""
        session = self._session()
        if session is None:
            return
        slot = session.take_slot()
        if slot is None:
            gevent.sleep(IDLE_S)
            return
        try:
            delay = session.start_unix_s + slot.due_s - time.time()
            if delay > 0:
                gevent.sleep(delay)
        except BaseException:
            # Stopped while waiting (GreenletExit): the next user sends this one.
            session.give_back(slot)
            raise
        session.note_lag(slot)
        endpoint = session.endpoint_for(slot)
        self.rpc_base = endpoint.url
        lease = session.lease()
        if lease is None:
            return
        if lease.nonce is None:
            try:
                nonce = self.call(
                    Method.GET_TRANSACTION_COUNT, ["0x" + lease.keypair.public_key.hex(), "latest"]
                )
                session.senders.set_nonce(lease, int(nonce, 16))
            except (RpcError, ValueError, TypeError):
                session.senders.rejected(lease, None)
                session.status.not_submitted["nonce lookup failed"] += 1
                return
        tx = session.build(lease, slot)
        raw = "0x" + tx.encode().hex()
        token = session.request_sent()
        submit_s = session.now_s()
        started = time.perf_counter()
        try:
            result = self.call(Method.SEND_RAW_TRANSACTION, [raw])
        except RpcError as exc:
            latency = time.perf_counter() - started
            status = exc.data.get("status") if isinstance(exc.data, dict) else None
            session.record(
                lease,
                tx,
                endpoint.node,
                submit_s,
                latency,
                slot,
                error_code=exc.code,
                error_message=exc.message,
                http_status=status,
            )
        else:
            latency = time.perf_counter() - started
            session.record(lease, tx, endpoint.node, submit_s, latency, slot, result=str(result))
        finally:
            session.request_answered(token)

    def read(self, method: str, params: list[Any] | None = None) -> Any:
        """One read call at this user's node (failures are in Locust's stats, not raised)."""
        if self._session() is None:
            return None
        try:
            return self.call(method, params)
        except RpcError:
            return None

    def some_address(self) -> str:
        """An address worth reading: the recipient every load transaction pays."""
        controller = controller_of(self.environment)
        return controller.recipient_address() if controller is not None else "0x" + "02" * 33


# ---- declaring the runnable classes --------------------------------------------------------


def _preparse(argv: Sequence[str]) -> argparse.Namespace:
    """``--topology`` and ``--host`` from the command line (or LOCUST_TOPOLOGY/LOCUST_HOST).

    User classes must exist when Locust imports the locustfile, before it parses options, and
    master and workers must declare the same ones: so they come from the command line itself.
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--topology", default=os.environ.get("LOCUST_TOPOLOGY"))
    parser.add_argument("-H", "--host", default=os.environ.get("LOCUST_HOST"))
    known, _ = parser.parse_known_args(list(argv))
    return known


def declare_users(base: type[BitcellUser], argv: Sequence[str] | None = None) -> dict[str, type]:
    """The runnable user class for ``base``: its host is ``--host`` or the first node of
    ``--topology`` (Locust wants one; every transaction goes to its slot's node anyway)."""
    options = _preparse(sys.argv[1:] if argv is None else argv)
    attributes: dict[str, Any] = {"abstract": False}
    if options.host:
        attributes["host"] = options.host
    elif options.topology:
        topology = load_topology(Path(options.topology))
        first = topology.nodes[topology.node_names[0]]
        attributes["host"] = f"http://{topology.devnet.host}:{first.rpc_port}"
    cls = type(base.__name__ + "_scheduled", (base,), attributes)
    return {cls.__name__: cls}
