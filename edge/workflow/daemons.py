"""Half-configured daemons: on every node, does each daemon run the configuration file on disk?

Why: a converge writes a file, then makes its daemon take it (load, reload, restart) in a later
task. An `edge` killed between the two leaves a file the daemon does not run; the next converge
of the same revision finds the file already right and, for a daemon that is reloaded only when
its file changes, would leave the daemon on the old configuration for good. `edge drift` compares
the daemons with the records the roles keep; this check asks the question directly, daemon by
daemon, read-only:

- nftables: the file's digest is the one recorded at its last load, and the kernel's table lists
  as it did right after that load (nft normalises what it loads, so a listing can only be
  compared with a listing);
- FRR (where the role runs it): the file's digest and each daemon's own running configuration are those recorded right
  after the last apply;
- HAProxy (likewise): the description the admin socket reports loaded is the file's (a digest of it);
- BIND: named read its configuration and keys since they were last written (`rndc status`: last
  configured), and serves the primary zone file's serial;
- every other supervised program that takes its files only when it starts (unbound, the PaaS
  programs, the link shaper): it started after its files were last written.

Each reading is printed by the node as `@@ want NAME` / `@@ live NAME` sections (the format of
`edge drift`), so the comparison is the pure `half_configured` below.
"""

from __future__ import annotations

import shlex
from concurrent.futures import ThreadPoolExecutor

from edge import ROOT
from edge.engines import docker_exec, facts
from edge.model.lab import Lab
from edge.model.scope import role_defaults
from edge.workflow.drift import NOT_RUNNING, Drift, recorded_vs_live, sections

NFT = role_defaults(ROOT / "roles", "nftables")
FRR = role_defaults(ROOT / "roles", "frr")
LB = role_defaults(ROOT / "roles", "loadbalancer")
DNS = role_defaults(ROOT / "roles", "dns")
COMMON = role_defaults(ROOT / "roles", "common")
# Programs that take a new configuration without a restart: checked by their own section above.
RELOADED = ("named", "haproxy", "frr-")
OK = "ok"


def _script() -> str:
    """The read-only node script; $1 is the lab's zone. Each part runs only where its file is."""
    q = shlex.quote
    table = f"inet {NFT['nftables_table']}"
    named = [DNS["dns_named_conf"], DNS["dns_tsig_key_file"], DNS["dns_rndc_key_file"]]
    conf = COMMON["common_supervisor_conf_dir"]   # where each role puts its programs
    return f"""
digest() {{ echo "sha256 $(sha256sum < "$1" | cut -d' ' -f1)"; }}
file={q(NFT['nftables_file'])} rec={q(NFT['nftables_loaded_record'])}
if [ -f "$file" ]; then
  echo '@@ want nftables: the file is the one loaded'; digest "$file"
  echo '@@ live nftables: the file is the one loaded'; head -n 1 "$rec" 2>/dev/null
  echo '@@ want nftables: table {table} is the one loaded'; tail -n +2 "$rec" 2>/dev/null
  echo '@@ live nftables: table {table} is the one loaded'; nft -s list table {table} 2>&1
fi
config={q(FRR['frr_config'])} rec={q(FRR['frr_applied_record'])}
if [ -f "$rec" ] || [ -f {q(conf)}/frr.conf ]; then
  echo '@@ want FRR: the daemons run the file'; cat "$rec" 2>/dev/null
  echo '@@ live FRR: the daemons run the file'; digest "$config"
  for d in {' '.join(FRR['frr_daemons'])}; do
    echo "== $d"; vtysh -d "$d" -c 'show running-config' 2>&1 | sed '1,/^Current configuration:/d'
  done
fi
if [ -f {q(conf)}/haproxy.conf ]; then
  echo '@@ want HAProxy: it runs the file'
  sed -n 's/^ *description //p' {q(LB['loadbalancer_config'])}
  echo '@@ live HAProxy: it runs the file'
  echo 'show info' | nc -NU {q(LB['loadbalancer_admin_socket'])} 2>/dev/null \\
    | sed -n 's/^description: //p'
fi
if supervisorctl status {q(DNS['dns_program'])} 2>/dev/null | grep -q RUNNING; then
  echo '@@ want named: it read its files since they were written'; echo {OK}
  echo '@@ live named: it read its files since they were written'
  read_at=$(date -d "$(rndc status 2>/dev/null | sed -n 's/^last configured: //p')" +%s \\
            2>/dev/null || echo 0)
  newest=$(stat -c '%Y %n' {' '.join(map(q, named))} 2>/dev/null | sort -n | tail -n 1)
  if [ "${{newest%% *}}" -le "$read_at" ]; then echo {OK}
  else echo "${{newest#* }} written at ${{newest%% *}}, named last configured at $read_at"; fi
  zone={q(DNS['dns_primary_zone_dir'])}/db.$1
  if [ -f "$zone" ]; then
    echo '@@ want named: it serves the zone file'
    named-checkzone "$1" "$zone" 2>&1 | sed -n 's/.* loaded serial \\([0-9]*\\).*/\\1/p'
    echo '@@ live named: it serves the zone file'
    dig +short +norecurse +time=1 +tries=1 SOA "$1" @{DNS['dns_control_address']} \\
      | awk '{{print $3}}'
  fi
fi
echo '@@ programs'; supervisorctl status 2>/dev/null
now=$(date +%s)
supervisorctl status 2>/dev/null | awk '$2 == "RUNNING" {{print $1, $4}}' | tr -d , |
while read -r name pid; do
  case "$name" in {'|'.join(f'{r}*' for r in RELOADED)}) continue;; esac
  started=$((now - $(ps -o etimes= -p "$pid")))
  newest=$(tr '\\0' '\\n' < /proc/"$pid"/cmdline | grep -E '^/(etc|opt|srv|usr/local)/' |
           while read -r f; do [ -f "$f" ] && stat -c '%Y %n' "$f"; done | sort -n | tail -n 1)
  echo "@@ want program $name: it started after its files were written"; echo {OK}
  echo "@@ live program $name: it started after its files were written"
  if [ -z "$newest" ] || [ "${{newest%% *}}" -le "$started" ]; then echo {OK}
  else echo "${{newest#* }} written at ${{newest%% *}}, $name started at $started"; fi
done
"""


# A program in any of these states runs no file at all (EXITED ones ran theirs and ended).
DOWN = NOT_RUNNING | {"STARTING"}

SCRIPT = _script()


def half_configured(node: str, text: str) -> list[Drift]:
    """Each daemon of `node` that does not run its file, from SCRIPT's output (pure). A program
    supervisord says is not running runs no file at all: it is told too."""
    return recorded_vs_live(node, sections(text), DOWN)


def check(lab: Lab, nodes: list[str] | None = None) -> list[Drift]:
    """Every running node of the lab (or `nodes`), read at once: the daemons that do not run
    their files. A node that is not running is not read (it runs nothing half)."""
    def read(name: str) -> list[Drift]:
        try:
            said = docker_exec.run(lab.node(name), ["sh", "-c", SCRIPT, "daemons",
                                                              lab.zone], check=False,
                                   timeout=facts.FACT_TIMEOUT_S, what="reading what runs")
        except docker_exec.ContainerUnavailable:
            return []
        return half_configured(name, said.stdout)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return [d for found in pool.map(read, sorted(nodes or lab.nodes)) for d in found]
