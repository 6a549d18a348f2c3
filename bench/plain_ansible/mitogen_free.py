"""Plain Ansible under Mitogen's strategy name, for bench/converge_strategy.py only.

site.yml names its strategy in the play (`strategy: mitogen_free`), and a play keyword beats
ANSIBLE_STRATEGY, so Mitogen cannot be turned off by that variable. Instead the benchmark points
ANSIBLE_STRATEGY_PLUGINS (which beats ansible.cfg's strategy_plugins) at this folder, where
`mitogen_free` is Ansible's own `free` strategy: same playbook, same lab, no Mitogen (each task
runs through the community.docker connection, `docker exec`, a new Python per task).
"""

from ansible.plugins.strategy.free import StrategyModule  # noqa: F401
