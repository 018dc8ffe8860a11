# The two commands of the README. Each creates or refreshes .venv from a fresh clone, then runs.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgeship-installed
DEMO_OUT ?= demo-out
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint format system-deps venv clean benchmarks

venv: $(STAMP)

# Debian packages the virtual device, the probe and the report tests use (Android's userland, sandbox, arm64
# emulation, a headless browser for the HTML report; openssl signs adb AUTH tokens in the vdevice auth tests).
# Installed only when missing and only when we may (root); without them the tests that need them skip — and
# fail under EDGESHIP_NO_SKIPS=1, as CI runs them.
SYSTEM_PACKAGES := mksh toybox bubblewrap adb qemu-user-static chromium openssl
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "note: missing system packages:$$missing (install them for the full test suite)"; fi; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all]'
	@touch $(STAMP)

demo: system-deps venv
	PATH="$(abspath $(VENV))/bin:$$PATH" bash scripts/demo.sh $(DEMO_OUT)

test: system-deps venv
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check edgeship tests benchmarks
	$(VENV)/bin/ruff format --check edgeship tests benchmarks

format: venv
	$(VENV)/bin/ruff format edgeship tests benchmarks
	$(VENV)/bin/ruff check --fix edgeship tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
