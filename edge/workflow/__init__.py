"""Workflows: what a user's command does, from start to end, as functions the CLI, the tests and
the benchmarks all call. The CLI only parses arguments and prints what these return."""
