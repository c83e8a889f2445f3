# failwatch-moonraker developer entry points.
#   make test   - create the venvs (daemon + the real Moonraker) and run every test
#   make demo   - watch a simulated printer through the real Moonraker and pause it,
#                 with PiNozCam's real model on this host (make demo-remote: a
#                 simulated remote predictor instead)
#   make bench  - print the performance figures (make bench-readme: also into README.md)
PYTHON ?= python3
VENV := .venv
MR_VENV := .venv-moonraker
MOONRAKER_VERSION := 0.11.0

.PHONY: test unit integration demo demo-remote bench bench-readme lint venv moonraker-venv clean

venv: $(VENV)/.installed
moonraker-venv: $(MR_VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]' numpy
	touch $@

# Moonraker pins its own dependencies, so it lives in a virtualenv of its own.
$(MR_VENV)/.installed:
	@ldconfig -p 2>/dev/null | grep -q libsodium || { \
	  echo "Moonraker needs libsodium; installing libsodium23"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq libsodium23; \
	  else sudo apt-get install -y libsodium23; fi; }
	$(PYTHON) -m venv $(MR_VENV)
	$(MR_VENV)/bin/pip install --quiet moonraker==$(MOONRAKER_VERSION)
	touch $@

# Test processes: the tests mostly wait on the real Moonraker, so 2 halve the time
# even on 2 cores (make test TEST_WORKERS=0 runs them in this one process).
TEST_WORKERS ?= 2

test: venv moonraker-venv
	$(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS)

unit: venv
	$(VENV)/bin/python -m pytest -q tests/unit

integration: venv moonraker-venv
	$(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) tests/integration

# The extra brings PiNozCam's runtime (from PyPI; already there with the dev extra).
demo: venv moonraker-venv
	@$(VENV)/bin/python -c 'import pinozcam_runner' 2>/dev/null || \
	  $(VENV)/bin/pip install --quiet -e '.[pinozcam]'
	$(VENV)/bin/python -m sim.demo

demo-remote: venv moonraker-venv
	$(VENV)/bin/python -m sim.demo --remote

bench: venv moonraker-venv
	$(VENV)/bin/python -m bench

# The same, and the README's figures block becomes this run's output (developers only:
# it edits a tracked file).
bench-readme: venv moonraker-venv
	$(VENV)/bin/python -m bench --readme README.md

lint: venv
	$(VENV)/bin/ruff check failwatch_moonraker sim tests bench
	$(VENV)/bin/mypy failwatch_moonraker

clean:
	rm -rf $(VENV) $(MR_VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
