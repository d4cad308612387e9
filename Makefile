# The lab's commands. Every target creates .venv (pinned requirements.txt) when missing.
#   make all          the main job: set up, run every notebook at the exercise's settings,
#                     export the scripts, build the report and the hand-in zip
#   make test         set up and run the tests (what CI runs)
#   make run NB=normalizing_flow ARGS="-p seed 3"   one notebook through papermill
#   make export       notebooks/*.py -> exported/*.py
#   make clean        remove runs/ and build/ (keeps .venv)

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NB ?= data
ARGS ?=
SEED ?= 0
NOTEBOOKS := $(basename $(notdir $(wildcard notebooks/*.py)))

.PHONY: setup test run export all clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	# put the project root on the venv's path: notebooks import flows_src from any folder
	$(PY) -c 'import site, pathlib; pathlib.Path(site.getsitepackages()[0], "flows_lab.pth").write_text("$(CURDIR)\n")'
	touch $@

setup: $(STAMP)

test: setup
	$(PY) -m pytest -q tests

run: setup
	$(PY) tools/notebooks.py run $(NB) $(ARGS)

export: setup
	$(PY) tools/notebooks.py export

all: setup
	@for nb in $(NOTEBOOKS); do $(PY) tools/notebooks.py run $$nb -p seed $(SEED) || exit 1; done
	$(MAKE) --no-print-directory export

clean:
	rm -rf runs build
