"""edge-testbed: try every change to a network edge on a lab copy before it reaches the live one.

`ROOT` is the checkout the package runs from: its roles, inventory, topology and contract are
the desired state every layer reads.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
