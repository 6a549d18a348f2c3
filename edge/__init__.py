"""edge-testbed: stage every change to a network edge before it reaches the live one."""
