"""The compactor study's cases (`make bench-compactor`, python -m bench.compactor):
fold rates, lag under maximum ingest, a backfill while live increments
arrive, and folds by one and two compactors beside the ceiling."""

from datetime import timedelta

# increment_counter on one of 1,000 keys: one pgbench transaction
LIVE = "\\set k random(1, 1000)\nSELECT tally.increment_counter('{counter}', :k::text);\n"
YEAR = timedelta(days=365)
