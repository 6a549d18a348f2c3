# The two commands: `make up` brings the lab up, `make test` runs every test.
STACK ?= lab
PY := .venv/bin/python

.PHONY: setup up test down status unit bench

setup:
	@scripts/setup

up: setup
	@$(PY) -m edge.cli up --stack $(STACK)

# PYTEST_ARGS e.g. "--random-order-bucket=module --random-order-seed=33" (any order passes).
test: setup
	@$(PY) -m pytest $(PYTEST_ARGS)

unit:
	@$(PY) -m pytest tests/unit

down:
	@$(PY) -m edge.cli down --stack $(STACK)

status:
	@$(PY) -m edge.cli status --stack $(STACK)

# Every benchmark (BENCH_ARGS e.g. "--runs 3 --only floor"), one table, README timings rewritten.
bench: setup
	@$(PY) bench/run.py $(BENCH_ARGS)
	@$(PY) bench/run.py --readme
