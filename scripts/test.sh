#!/usr/bin/env bash
# The whole test suite: installs what tests need into .venv, starts a throwaway
# PostgreSQL and makes sure a headless Chromium is there, then runs pytest (hypothesis,
# coverage floor 90%) on both cores, mypy --strict, ruff and the import contracts.
# .ci/run calls exactly this script. With CI=true a missing PostgreSQL or Chromium is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,sql,postgres,web]'
# The peer the day-spreading agreement test compares with: saas-metrics 0.2.1 declares
# Python 3.12 but runs on 3.11; its dependencies come with the test extra above.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --ignore-requires-python 'saas-metrics==0.2.1'

# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
start_postgres
# shellcheck source=scripts/chromium.sh
source scripts/chromium.sh
ensure_chromium

status=0
# Two workers: the machine (and CI) has two cores, and the suite must stay under 8 minutes.
.venv/bin/python -m pytest -p no:cacheprovider -n "${REVCRM_TEST_WORKERS:-2}" --cov=revcrm --cov-report=term --cov-fail-under=90 "$@" || status=$?
if [ "$status" -eq 0 ]; then
  .venv/bin/python -m mypy --strict src tests || status=$?
fi
if [ "$status" -eq 0 ]; then
  .venv/bin/python -m ruff check src tests benchmarks examples || status=$?
fi
if [ "$status" -eq 0 ]; then
  # The import contracts (layers, no cycles) in .importlinter.
  .venv/bin/lint-imports || status=$?
fi
exit "$status"
