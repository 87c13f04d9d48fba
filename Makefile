# The two set-up commands of the README. Each creates .venv when needed (Python 3.11).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# dvc runs stage commands (`oak ...`) through the shell: they must find the venv's scripts.
RUN := PATH="$(BIN):$$PATH"

.PHONY: repro test test-fast

# `make repro PROFILE=imagenet` switches the studies to the real recipes (data.source must point at ImageNet).
PROFILE ?=
# Stages at once (`oak repro --jobs`): the demo recipe trains on one core per run (train.cpu_threads), so one
# stage per core; a paper profile's run takes the whole machine, so one at a time, as `dvc repro`.
JOBS ?= $(if $(filter-out demo,$(PROFILE)),1,$(shell nproc))

repro: $(VENV)/.installed
	$(RUN) oak plan $(PROFILE)
	$(RUN) oak repro --jobs $(JOBS)

# As many test processes as cores (pytest-xdist; each test file stays in one process); the suite's
# times are in docs/benchmarks.md.
test: $(VENV)/.installed-test
	$(RUN) pytest -n auto --dist loadfile

# The tests not marked slow, for the edit-test loop (times in docs/benchmarks.md); `make test` runs them all.
test-fast: $(VENV)/.installed-test
	$(RUN) pytest -n auto -m "not slow"

# pip byte-compiles every module as it installs (slower than --no-compile: docs/benchmarks.md). Keep it:
# where PYTHONDONTWRITEBYTECODE is set, nothing compiles later, and every `oak` process would compile
# torch, Lightning and MLflow from source (oak train's start-up three times as long, same page).
# The install is quiet and long, so it says what it does first (times measured in docs/benchmarks.md).
INSTALLING = @echo "Installing Oak and its dependencies (PyTorch, Lightning, timm, MLflow, DVC) into $(VENV): 2 to 3 minutes\
 on a 2-core machine when pip's cache has them, longer when it downloads them (PyTorch alone is several GB)."

$(VENV)/.installed: pyproject.toml
	$(INSTALLING)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --editable .
	touch $@

$(VENV)/.installed-test: pyproject.toml
	$(INSTALLING)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --editable '.[test]'
	touch $@ $(VENV)/.installed
