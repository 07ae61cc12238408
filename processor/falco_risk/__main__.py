"""``python -m falco_risk`` runs the command line."""

from falco_risk.cli import run

run()
