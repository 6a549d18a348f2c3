"""The one benchmark entry point (`make bench`): run the benchmarks, print one table of their
figures, and generate the README's "## Timings" section from the results.

Usage:
  .venv/bin/python bench/run.py [--runs N] [--only NAME ...]   run (all by default), then print
  .venv/bin/python bench/run.py --readme                      rewrite README's timings section
                                                               (and bench/results/scale.html,
                                                               the scale plot) from
                                                               bench/results, run nothing

Each benchmark records medians, minima, maxima and its raw figures with the machine's description
and load in bench/results/<name>.json (bench/common.py); figures are described in
bench/figures.py. Benchmarks run one after another: they share this machine's two cores.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from common import RESULTS, ROOT, run_benchmark, summary
from figures import NAMES, benchmark
from tables import (
    ResultsError,
    load_results,
    machine_text,
    readme_section,
    replace_section,
    run_text,
    scale_series,
    terminal_table,
)

from edge.report.scale import scale_html

README = ROOT / "README.md"
SCALE_REPORT = RESULTS / "scale.html"


def rewrite_readme() -> None:
    """The section between the bench markers, generated again from every results file."""
    results = load_results(RESULTS)
    README.write_text(replace_section(README.read_text(), readme_section(results), README))
    print(f"rewrote the timings section of {README.relative_to(ROOT)}", file=sys.stderr)
    if "scale" in results:
        result = results["scale"]
        about = (run_text(benchmark("scale"), result).replace("*", "") + " Machine: "
                 + machine_text(result.get("machine") or {}) + ".")
        SCALE_REPORT.write_text(scale_html(scale_series(result), about))
        print(f"wrote {SCALE_REPORT.relative_to(ROOT)}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--runs", type=int, default=5,
                        help="how many times each benchmark measures (default 5)")
    parser.add_argument("--only", action="append", choices=NAMES, metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(NAMES)}")
    parser.add_argument("--readme", action="store_true",
                        help="run nothing: rewrite README.md's timings from bench/results")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs {args.runs}: give at least 1 (medians need several; 5 by default)")
    try:
        if args.readme:
            rewrite_readme()
            print(terminal_table(load_results(RESULTS)))
            return
        chosen = args.only or list(NAMES)
        for name in chosen:
            print(f"== {name} ({args.runs} runs)", file=sys.stderr, flush=True)
            module = importlib.import_module(name)
            print(f"   wrote {run_benchmark(name, module.measure, args.runs).relative_to(ROOT)}",
                  file=sys.stderr)
        results = load_results(RESULTS)
        print(terminal_table({name: results[name] for name in chosen}))
    except ResultsError as err:
        raise SystemExit(str(err)) from None


if __name__ == "__main__":
    main()
