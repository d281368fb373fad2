# flagstaff's developer commands. Each target sets up what it needs itself:
# a virtual environment in .venv with flagstaff built from this checkout.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench bench-peers clean

# The main job: the onboarding experiment end to end on 127.0.0.1 (a relay,
# long-polling clients, emitters, the readout and the rollout). It installs
# only what the demo needs, so a fresh clone gets to the report quickly.
demo: $(VENV)/.demo-installed
	$(BIN)/flagstaff demo

# The whole test suite.
test: $(VENV)/.installed
	$(BIN)/python -m pytest

# flagstaff and configcat-client side by side, with the speed-up per group.
bench: $(VENV)/.installed
	$(BIN)/python benchmarks/compare.py

# flagstaff beside the other Python SDKs that evaluate locally (LaunchDarkly,
# GrowthBook, Unleash, Flagsmith, configcat-client) and under OpenFeature.
bench-peers: $(VENV)/.peers-installed
	$(BIN)/python benchmarks/peers.py

$(VENV)/.peers-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[bench,peers,openfeature]"
	touch $@

$(VENV)/.demo-installed: pyproject.toml setup.py $(wildcard src/flagstaff/core/*.c src/flagstaff/core/*.h src/flagstaff/core/*.pyx src/flagstaff/core/*.pxd)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[demo]"
	touch $@

$(VENV)/.installed: pyproject.toml setup.py $(wildcard src/flagstaff/core/*.c src/flagstaff/core/*.h src/flagstaff/core/*.pyx src/flagstaff/core/*.pxd)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	touch $@

clean:
	rm -rf $(VENV) build src/*.egg-info src/flagstaff/core/_core.c \
		src/flagstaff/core/*.so
