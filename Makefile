# The lab's commands. Every target creates .venv (pinned requirements.txt) when missing.
#   make all          the main job: set up, run the exercise's notebooks at its settings
#                     (two at a time; trained models are reused when config and code are
#                     unchanged, FORCE=1 retrains), export the scripts, build the report and
#                     the hand-in zip
#   make test         set up and run the tests (what CI runs)
#   make run NB=normalizing_flow ARGS="-p seed 3"   one notebook through papermill, its
#                     output live; published into runs/ only when every cell succeeded
#                     (ARGS="... --replace": over a finished run of other settings)
#   make lab          Jupyter Lab on notebooks/, with the venv's Python as its kernel
#   make export       notebooks/*.py -> exported/*.py
#   make report       the PDF report from the executed notebooks of SEED (<= 12 pages)
#   make submission   the hand-in zip (README with AUTHOR/USERNAME, code, scripts, report);
#                     refused while author.toml or AI_USE.md hold placeholders (DRAFT=1: anyway)
#   make beyond       the stronger presets (every model notebook with -p preset strong, the
#                     normalizing flow also with -p preset spline), the beyond notebook
#                     comparing them with the exercise's, and its own PDF
#   make bench        training-step and sampling speed: plain eager references vs ours
#   make sweep SEEDS="0 1 2"   all notebooks of every preset per seed, then mean ± std of
#                     every metric and every target per seed; the report, zip and beyond PDF
#                     of SEED rebuilt with it
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
# From the table of notebooks (flows_src/registry.py, read with the system Python: it needs
# no venv): the notebooks of the exercise (the hand-in), and the model notebooks, which take
# a preset parameter.
HANDIN := $(shell $(PYTHON) -m flows_src.registry --handin)
MODELS := $(shell $(PYTHON) -m flows_src.registry --preset)

# AUTHOR=/USERNAME= given on the make command line override author.toml; environment
# variables of those names are ignored (many shells export USERNAME, which would silently
# rename the hand-in)
WHO = $(if $(filter command line,$(origin AUTHOR)),--author "$(AUTHOR)") \
      $(if $(filter command line,$(origin USERNAME)),--username "$(USERNAME)")

.PHONY: setup test run lab export all notebooks clean report submission sweep bench beyond \
	beyond-notebooks beyond-report

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	# the project itself, editable (pyproject.toml): notebooks, tools and tests import
	# flows_src from any folder; offline, with the venv's own setuptools
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

setup: $(STAMP)
	@bash tools/setup_system.sh

# the tests and the library's docstring examples (pyproject.toml: testpaths, doctests)
test: setup
	$(PY) -m pytest -q

run: setup
	OMP_NUM_THREADS=1 $(PY) tools/notebooks.py run $(NB) $(ARGS)

# ARGS: more options of jupyter lab, e.g. ARGS="--no-browser --port 8899"
lab: setup
	$(PY) tools/notebooks.py lab $(ARGS)

export: setup
	$(PY) tools/notebooks.py export

# Notebooks run side by side (make -j2) would interleave their progress bars: then each
# says only when it is done and where its outputs went.
SIDE_BY_SIDE = $(if $(filter-out -j1,$(filter -j%,$(MAKEFLAGS))),--quiet)

# One target per notebook; flow matching's Q5 reads the normalizing flow's results. Each
# notebook trains on one thread: two run side by side on the two cores, and a second thread
# never helped these small models.
nb-%: setup
	OMP_NUM_THREADS=1 $(PY) tools/notebooks.py run $* -p seed $(SEED) $(SIDE_BY_SIDE) \
		$(if $(FORCE),--force)
nb-flow_matching: nb-normalizing_flow

# the same notebooks with the strong preset, into runs/<notebook>/strong/seed-<s>/.
# torch.compile pays off for the exercise's 8-wide coupling networks, not for the strong
# preset's 32-wide ones (measured: eager trains faster), so that run stays eager.
STRONG_ARGS_normalizing_flow := -p compile_model False
strong-%: setup
	OMP_NUM_THREADS=1 $(PY) tools/notebooks.py run $* -p seed $(SEED) -p preset strong \
		$(STRONG_ARGS_$*) $(SIDE_BY_SIDE) $(if $(FORCE),--force)
strong-flow_matching: strong-normalizing_flow

# the rational-quadratic spline flow (flows_src/presets.py: the normalizing flow only); its
# conditioner networks stay eager under torch.compile, the spline arithmetic compiles
spline-normalizing_flow: setup
	OMP_NUM_THREADS=1 $(PY) tools/notebooks.py run normalizing_flow -p seed $(SEED) \
		-p preset spline $(SIDE_BY_SIDE) $(if $(FORCE),--force)

# A spec run that make all left behind is reused (have-%), a missing one is run; make sweep
# sets SPEC=nb to run them all, side by side with the strong ones.
SPEC ?= have
have-%: setup
	@$(PY) tools/notebooks.py finished $* --seed $(SEED) || $(MAKE) --no-print-directory nb-$*

# the comparison loads the models of every preset
nb-beyond: $(addprefix $(SPEC)-,$(MODELS)) $(addprefix strong-,$(MODELS)) \
	spline-normalizing_flow

# the longest first, so the other core works through the rest meanwhile
notebooks: nb-normalizing_flow $(addprefix nb-,$(filter-out normalizing_flow,$(HANDIN)))

beyond-notebooks: strong-normalizing_flow spline-normalizing_flow \
	strong-conditional_flow_matching nb-beyond

beyond-report: setup
	$(PY) tools/report.py --seed $(SEED) --notebooks beyond --max-pages 40 \
		--out runs/report/seed-$(SEED)/beyond.pdf $(WHO)

report: setup
	$(PY) tools/report.py --seed $(SEED) $(WHO)

submission: export report
	$(PY) tools/submission.py --seed $(SEED) $(WHO) $(if $(DRAFT),--draft)

all: setup
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory -j2 notebooks && \
	$(MAKE) --no-print-directory submission DRAFT=$(if $(DRAFT),$(DRAFT),1) && \
	echo "make all: done in $$(( $$(date +%s) - start )) s" && \
	echo "report: runs/report/seed-$(SEED)/report.pdf" && \
	ls runs/submission/*.zip | sed 's/^/hand-in: /'

beyond: setup
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory -j2 beyond-notebooks && \
	$(MAKE) --no-print-directory beyond-report && \
	echo "make beyond: done in $$(( $$(date +%s) - start )) s" && \
	echo "beyond report: runs/report/seed-$(SEED)/beyond.pdf"

# --quick for a smoke run, --warm-cache to measure what a rerun pays for compiling
bench: setup
	$(PY) -m bench.bench $(BENCH_ARGS)

sweep: setup
	@# the longest chain first: strong NF -> strong FM -> beyond
	@start=$$(date +%s); for s in $(SEEDS); do \
		$(MAKE) --no-print-directory -j2 strong-normalizing_flow notebooks beyond-notebooks \
			SEED=$$s SPEC=nb \
		|| exit 1; done; \
	$(PY) tools/sweep.py --seeds $(SEEDS) --seconds $$(( $$(date +%s) - start ))
	$(MAKE) --no-print-directory submission beyond-report DRAFT=$(if $(DRAFT),$(DRAFT),1)

# make study NAME=nf-affine [TRIALS=20] [BUDGET=300] [WORKERS=2] [STORAGE=postgresql://...]
# An Optuna study of tools/study.py (NAME: nf-affine, nf-spline, fm, cfm; `$(PY) tools/study.py
# --list`): TRIALS trials shared among WORKERS processes, each training on one core for a
# share of BUDGET seconds (at least one epoch), data and weights seeded with SEED; the table
# and the plot of quality against training seconds go to runs/studies/NAME/. The default
# storage is a journal file there; STORAGE (a database URL) lets several machines share it.
TRIALS ?= 20
BUDGET ?= 300
WORKERS ?= 1
STORAGE ?=
.PHONY: study
study: setup
	@test -n "$(NAME)" || { echo "make study: give NAME=<study>, one of:"; \
		$(PY) tools/study.py --list | grep -v '^ '; exit 2; }
	OMP_NUM_THREADS=1 $(PY) tools/study.py --name $(NAME) --trials $(TRIALS) \
		--budget-seconds $(BUDGET) --workers $(WORKERS) --seed $(SEED) \
		$(if $(STORAGE),--storage "$(STORAGE)")

clean:
	rm -rf runs build
