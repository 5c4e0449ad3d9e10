"""``python -m bitcell_sim`` runs the ``bitcell-sim`` command."""

from bitcell_sim.cli import main

main()
