# The two commands: `make up` brings the lab up, `make test` runs every test.
STACK ?= lab
PY := .venv/bin/python

.PHONY: setup up test down status unit bench

setup:
	@scripts/setup

up: setup
	@$(PY) -m edge.cli up --stack $(STACK)

test: setup
	@$(PY) -m pytest

unit:
	@$(PY) -m pytest tests/unit

down:
	@$(PY) -m edge.cli down --stack $(STACK)

status:
	@$(PY) -m edge.cli status --stack $(STACK)

bench: setup
	@$(PY) bench/lab_lifecycle.py
	@$(PY) bench/edge_up.py
	@$(PY) bench/change_gate.py
	@$(PY) bench/watch.py
