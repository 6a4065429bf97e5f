# The two commands of the README's quick start. Each sets up everything it needs on a fresh
# Debian machine: the Debian packages (as root, or with sudo), a virtual environment in .venv,
# and the Python packages.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := chromium chromium-driver fonts-dejavu-core

.PHONY: test demo setup apt lint typecheck pytest benchmarks clean

test: setup lint typecheck pytest

demo: setup
	$(BIN)/permitnet demo $(DEMO_ARGS)

setup: $(VENV)/.installed apt

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# protocol/cbor.py is compiled by mypyc (setup.py): a change to it needs a rebuild.
$(VENV)/.installed: pyproject.toml setup.py protocol/cbor.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

lint:
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck:
	$(BIN)/mypy -p permitnet.protocol -p permitnet.node -p permitnet.registry -p permitnet.tools
	$(BIN)/mypy tests benchmarks

pytest:
	$(BIN)/pytest -n auto

benchmarks: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
