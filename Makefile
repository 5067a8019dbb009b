# tally — exact counters and rollups inside PostgreSQL.
# `make demo` and `make test` do all set-up on a fresh Debian 12 machine.

SHELL := /bin/bash
.DEFAULT_GOAL := help
export PGPORT ?= 54329
export CITUS_PORT ?= 54339
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
DB := scripts/db.sh
PGBIN := /usr/lib/postgresql/15/bin
PSQL = /usr/bin/psql -X -v ON_ERROR_STOP=1
TEST_DB ?= tally_test
LINT_DB ?= tally_lint

.PHONY: help deps db dsn db-stop migrate demo generate lint pgtap pytest test wheel test-wheel bench bench-compactor soak clean \
	citus citus-dsn citus-stop test-citus bench-citus

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

deps: ## Install Debian packages and the Python venv (idempotent; run it again after an interruption)
	@scripts/deps.sh

db: deps ## Start the throwaway cluster under .pgdata/ (idempotent)
	@$(DB) start

dsn: ## Print a libpq connection string for the cluster's `tally` database
	@$(DB) dsn tally

db-stop: ## Stop the throwaway cluster
	@$(DB) stop

migrate: db ## alembic upgrade head into the `tally` database
	@TALLY_DSN="$$($(DB) dsn tally)" $(VENV)/bin/alembic upgrade head
	@echo "tally migrated: $$($(DB) dsn tally)"

demo: migrate ## Drive a short realistic load and show counters, a series, the lag
	@$(VENV)/bin/tally --dsn "$$($(DB) dsn tally)" demo

# A fresh, migrated database for a test stage: $(call fresh_db,name)
define fresh_db
	$(PSQL) "$$($(DB) dsn postgres)" -qc "DROP DATABASE IF EXISTS $(1) WITH (FORCE)" -c "CREATE DATABASE $(1)"
	TALLY_DSN="$$($(DB) dsn $(1))" $(VENV)/bin/alembic upgrade head
endef

generate: deps ## Write the sync client and group commit from their async sources
	$(PY) scripts/async_to_sync.py

lint: db ## sqlfluff, plpgsql_check over every function, ruff, the generated sync client up to date
	$(PY) scripts/async_to_sync.py --check
	$(VENV)/bin/sqlfluff lint sql/
	$(VENV)/bin/ruff check python_client migrations plpython bench scripts
	$(VENV)/bin/ruff format --check python_client migrations plpython bench scripts
	$(call fresh_db,$(LINT_DB))
	$(PSQL) "$$($(DB) dsn $(LINT_DB))" -qf scripts/plpgsql_check.sql
	@# the distributed install's bodies (tally.<name>.citus.sql), checked in their place
	for f in $$(find sql -name 'tally.*.citus.sql' | sort); do \
	    $(PSQL) "$$($(DB) dsn $(LINT_DB))" -qf "$$f" || exit 1; done
	$(PSQL) "$$($(DB) dsn $(LINT_DB))" -qf scripts/plpgsql_check.sql
	$(PSQL) "$$($(DB) dsn postgres)" -qc "DROP DATABASE $(LINT_DB)"

pgtap: db ## pgTAP suite via pg_prove, against a fresh migrated database
	$(call fresh_db,$(TEST_DB))
	$(PSQL) "$$($(DB) dsn $(TEST_DB))" -qc "CREATE SCHEMA tap; CREATE EXTENSION pgtap SCHEMA tap"
	PGOPTIONS='-c search_path=tap,public' pg_prove -h "$$($(DB) datadir)/../run" -p $(PGPORT) -U postgres \
	    -d $(TEST_DB) --ext .sql -r pgtap_tests/

pytest: db ## pytest: concurrency, faults, bloat, retention, scheduling, migrations (real cluster)
	TALLY_ADMIN_DSN="$$($(DB) dsn postgres)" $(VENV)/bin/pytest -q -s python_client/tests

test: lint pgtap pytest test-citus ## Everything CI runs: lint, pgTAP, pytest, the Citus suite

citus: deps ## A throwaway Citus cluster (coordinator + 2 workers), tally migrated into it, distributed
	@scripts/citus.sh start
	@TALLY_DSN="$$(scripts/citus.sh dsn tally)" $(VENV)/bin/alembic upgrade head
	@echo "tally migrated (distributed): $$(scripts/citus.sh dsn tally)"

citus-dsn: ## Print the Citus coordinator's libpq connection string (`tally` database)
	@scripts/citus.sh dsn tally

citus-stop: ## Stop every node of the Citus cluster
	@scripts/citus.sh stop

test-citus: deps ## The Citus suite: tally distributed; and installed not distributed, tested as a plain install
	@scripts/citus.sh start
	@# tally installed on the coordinator but not distributed: the pgTAP suite, as on a single node
	TALLY_DSN="$$(scripts/citus.sh fresh-db tally_citus_plain)" TALLY_DISTRIBUTED=off $(VENV)/bin/alembic upgrade head
	$(PSQL) "$$(scripts/citus.sh dsn tally_citus_plain)" -qc "CREATE SCHEMA tap; CREATE EXTENSION pgtap SCHEMA tap"
	PGOPTIONS='-c search_path=tap,public' pg_prove -h "$$(scripts/citus.sh datadir 0)/../run" -p $(CITUS_PORT) \
	    -U postgres -d tally_citus_plain --ext .sql -r pgtap_tests/
	TALLY_CITUS_DSN="$$(scripts/citus.sh fresh-db tally_citus_test)" TALLY_CITUS_SHARD_COUNT=8 \
	    TALLY_CITUS_PLAIN_DSN="$$(scripts/citus.sh dsn tally_citus_plain)" \
	    $(VENV)/bin/pytest -q -s python_client/tests_citus

wheel: deps ## Build the client's wheel (with the migrations in tally/_schema/) into dist/
	$(VENV)/bin/pip wheel -q --no-deps -w dist ./python_client
	@ls dist/tally-*.whl

test-wheel: db ## The wheel in a clean venv outside the checkout: tally --help, migrate, status, metrics, compact
	TALLY_ADMIN_DSN="$$($(DB) dsn postgres)" $(VENV)/bin/pytest -q -s python_client/tests/client/test_wheel.py

# BENCH_ARGS: more options for the bench scripts, e.g. BENCH_ARGS="--out /tmp/bench" (default: bench/results/)
BENCH_ARGS ?=

bench: db ## tally vs UPDATE, upserts, raw INSERT, Redis; batch, fold, lag, reads (bench/results/latest.*)
	$(call fresh_db,tally_bench)
	$(PY) -u -m bench.run --dsn "$$($(DB) dsn tally_bench)" $(BENCH_ARGS)

bench-compactor: db ## The longer compactor study: fold rates, lag, backfill while live (compactor.json)
	$(call fresh_db,tally_bench)
	$(PY) -u -m bench.compactor --dsn "$$($(DB) dsn tally_bench)" $(BENCH_ARGS)

# The two-worker database is migrated first: it makes tally's roles on every
# node (roles are per cluster; a database that sees only worker 1 makes them there alone).
bench-citus: db ## tally on Citus (1 and 2 workers) vs single node: increments, batches, folds (citus.txt)
	$(call fresh_db,tally_bench)
	@scripts/citus.sh start
	TALLY_DSN="$$(scripts/citus.sh fresh-db tally_bench2 2)" $(VENV)/bin/alembic upgrade head
	TALLY_DSN="$$(scripts/citus.sh fresh-db tally_bench1 1)" $(VENV)/bin/alembic upgrade head
	$(PY) -u -m bench.citus --plain "$$($(DB) dsn tally_bench)" \
	    --citus1 "$$(scripts/citus.sh dsn tally_bench1)" --citus2 "$$(scripts/citus.sh dsn tally_bench2)" $(BENCH_ARGS)

soak: db ## The bloat/lag test for 10 minutes instead of 30 s
	TALLY_SOAK_SECONDS=600 $(VENV)/bin/pytest -q -s python_client/tests/fold/test_bloat.py

clean: db-stop citus-stop ## Stop the clusters and remove them and the venv
	@# the venv's stamps first: a venv removed only in part is then made again
	rm -f $(VENV)/.tally-deps $(VENV)/.tally-requirements
	rm -rf "$$(readlink -f .pgdata)" .pgdata "$$(readlink -f .citusdata)" .citusdata $(VENV)
