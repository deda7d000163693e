# The two commands of the README: `make run` opens the app on the demo city, `make test` runs every test.
.PHONY: run test setup bench demo-city
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba

.venv/.citytwin-installed: pyproject.toml uv.lock scripts/setup.sh
	bash scripts/setup.sh
	touch $@

setup: .venv/.citytwin-installed

run: setup
	.venv/bin/citytwin app $(SCENARIO)

test: setup
	bash scripts/test.sh $(PYTEST_ARGS)

bench: setup
	bash scripts/setup.sh --group bench
	for b in benchmarks/bench_*.py; do .venv/bin/python $$b || exit 1; done

demo-city: setup
	.venv/bin/python gis_data/make_demo_city.py --out gis_data/demo_city
