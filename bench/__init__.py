"""The benchmarks, run from the repository root: `python -m bench.run`
(`make bench`), `python -m bench.compactor` (`make bench-compactor`),
`python -m bench.citus` (`make bench-citus`). Each of the three only
orders its cases and writes its results:

  cases/         what is measured, each case one module returning plain data
                 (compactor/ and citus/: the cases of the other two benches)
  runners.py     pgbench, a throwaway Redis, the compactor thread, samplers, CPU time
  counters.py    the counters a case makes, loads, folds and checks
  plan.py        how long and how big `make bench` is (full and --quick)
  report/        the lines, tables and chart printed; targets.py judges a run
                 by thresholds.toml, the pass thresholds the README quotes
  results/       the committed results (JSON, text, the chart)
"""
