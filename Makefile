# The two commands of the README: `make run` opens the app on the demo city, `make test` runs every test.
# `make test-fast` is the edit-test loop: the tests that take under a second each, no GUI.
.PHONY: run test test-fast setup bench demo-city
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba

.venv/.citytwin-installed: pyproject.toml uv.lock scripts/setup.sh
	bash scripts/setup.sh
	touch $@

setup: .venv/.citytwin-installed

run: setup
	.venv/bin/citytwin app $(SCENARIO)

test: setup
	bash scripts/test.sh $(PYTEST_ARGS)

# Contract, unit and verification tests under a second each: everything not marked slow (pyproject's
# marker) and not gui (tests/app, marked by tests/conftest.py). Under 3 minutes on 2 cores.
test-fast: setup
	bash scripts/test.sh -m "not slow and not gui" -q $(PYTEST_ARGS)

bench: setup
	bash scripts/setup.sh --group bench
	for b in benchmarks/bench_*.py; do .venv/bin/python $$b || exit 1; done

demo-city: setup
	.venv/bin/python gis_data/make_demo_city.py --out gis_data/demo_city
