"""How edge-testbed reaches into the lab's containers (outside the Pulumi providers of edge/infra/).

`docker_exec` runs one command in one container and says clearly when that failed; `facts` pairs a
read-only command with a pure parser of its output, so what the lab *is* (its BGP sessions, its
ruleset, its listening sockets...) is read one way everywhere, and each parser is unit-tested on
output captured from a real lab.
"""
