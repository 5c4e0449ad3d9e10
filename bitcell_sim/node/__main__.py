"""Process entry of the devnet node: ``python -m bitcell_sim.node --config node.json``.

Loads the config and topology, opens the chain, binds the ports and runs until SIGTERM or
SIGINT (clean stop, exit 0). A bad config, a foreign data_dir or a busy port print one line
naming the node and exit 1. Logs go to stderr, one line per event, INFO by default.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from bitcell_sim.errors import DevnetError
from bitcell_sim.node.config import NodeSettings, load_config
from bitcell_sim.node.node import Node

log = logging.getLogger("bitcell_sim.node")


async def run_node(settings: NodeSettings) -> int:
    """Run one node until SIGTERM/SIGINT; returns the exit status."""
    node = Node(settings)
    try:
        await node.start()
    except BaseException:
        await node.stop()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("signal received: stopping node=%s", settings.name)
    await node.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bitcell_sim.node", description="Run one bitcell-sim devnet node."
    )
    parser.add_argument("--config", required=True, help="path of the node's JSON config")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        logging.basicConfig(
            level=config.log_level,
            format=f"%(asctime)s %(levelname)s {config.node}: %(message)s",
            stream=sys.stderr,
        )
        return asyncio.run(run_node(NodeSettings.resolve(config)))
    except DevnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
