# The lab's commands. Every target creates .venv (pinned requirements.txt) when missing.
#   make all          the main job: set up, run every notebook at the exercise's settings
#                     (two at a time; trained models are reused when config and code are
#                     unchanged, FORCE=1 retrains), export the scripts, build the report and
#                     the hand-in zip
#   make test         set up and run the tests (what CI runs)
#   make run NB=normalizing_flow ARGS="-p seed 3"   one notebook through papermill
#   make export       notebooks/*.py -> exported/*.py
#   make report       the PDF report from the executed notebooks of SEED (<= 12 pages)
#   make submission   the hand-in zip (README with AUTHOR/USERNAME, code, scripts, report)
#   make bench        training-step and sampling speed: plain eager references vs ours
#   make sweep SEEDS="0 1 2"   every notebook per seed, then mean ± std of every metric
#   make clean        remove runs/ and build/ (keeps .venv)

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NB ?= data
ARGS ?=
SEED ?= 0
SEEDS ?= 0 1 2
BENCH_ARGS ?=
NOTEBOOKS := $(basename $(notdir $(wildcard notebooks/*.py)))

# notebooks whose models train: FORCE=1 passes them force=True
TRAINING := normalizing_flow flow_matching conditional_flow_matching beyond

# AUTHOR=/USERNAME= given on the make command line override author.toml; environment
# variables of those names are ignored (many shells export USERNAME, which would silently
# rename the hand-in)
WHO = $(if $(filter command line,$(origin AUTHOR)),--author "$(AUTHOR)") \
      $(if $(filter command line,$(origin USERNAME)),--username "$(USERNAME)")

.PHONY: setup test run export all notebooks clean report submission sweep bench

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	# put the project root on the venv's path: notebooks import flows_src from any folder
	$(PY) -c 'import site, pathlib; pathlib.Path(site.getsitepackages()[0], "flows_lab.pth").write_text("$(CURDIR)\n")'
	touch $@

setup: $(STAMP)
	@bash tools/setup_system.sh

test: setup
	$(PY) -m pytest -q tests

run: setup
	OMP_NUM_THREADS=1 $(PY) tools/notebooks.py run $(NB) $(ARGS)

export: setup
	$(PY) tools/notebooks.py export

# One target per notebook; flow matching's Q5 reads the normalizing flow's results. Each
# notebook trains on one thread: two run side by side on the two cores, and a second thread
# never helped these small models.
nb-%: setup
	OMP_NUM_THREADS=1 $(PY) tools/notebooks.py run $* -p seed $(SEED) \
		$(if $(and $(FORCE),$(filter $*,$(TRAINING))),-p force True)
nb-flow_matching: nb-normalizing_flow
nb-beyond: nb-flow_matching

# the longest first, so the other core works through the rest meanwhile
notebooks: nb-normalizing_flow $(addprefix nb-,$(filter-out normalizing_flow,$(NOTEBOOKS)))

report: setup
	$(PY) tools/report.py --seed $(SEED) $(WHO)

submission: export report
	$(PY) tools/submission.py --seed $(SEED) $(WHO)

all: setup
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory -j2 notebooks && \
	$(MAKE) --no-print-directory submission && \
	echo "make all: done in $$(( $$(date +%s) - start )) s" && \
	echo "report: runs/report/seed-$(SEED)/report.pdf" && \
	ls runs/submission/*.zip | sed 's/^/hand-in: /'

# --quick for a smoke run, --warm-cache to measure what a rerun pays for compiling
bench: setup
	$(PY) -m bench.bench $(BENCH_ARGS)

sweep: setup
	@for s in $(SEEDS); do $(MAKE) --no-print-directory -j2 notebooks SEED=$$s || exit 1; done
	$(PY) tools/sweep.py --seeds $(SEEDS)

clean:
	rm -rf runs build
