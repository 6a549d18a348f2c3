"""How edge drives the tools it stands on: the Pulumi CLI (`stack`), ansible-runner (`configure`),
the base image (`images`), Docker objects by label (`cleanup`), one `docker exec` helper and the
facts read through it (`docker_exec`, `facts`: a read-only command plus a pure parser, each
parser unit-tested on output captured from a real lab), and the host processes edge starts
(`processes`: stopped cleanly when edge is interrupted or killed).
"""
