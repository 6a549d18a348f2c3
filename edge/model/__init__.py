"""The data of the edge: topology, address plan, contract, change files, revisions, and every
file edge keeps about a stack (state). Files only: no daemons, no containers."""
