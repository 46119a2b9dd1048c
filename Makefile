# StrokeLens: `make run` starts the local stack; `make test` runs every test. Both set up first.
SHELL := /bin/bash
# The first Python 3.12 that really runs (a pyenv shim may exist but refuse).
PYTHON_SYS ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12 python3; do \
  $$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# npm ci's stamp (rule below): defined here, before any rule names it as a prerequisite.
NODE_STAMP := node_modules/.installed
DATA ?= ../shared/data/ct-hemorrhage
SEED ?= 0
PORT ?= 8000

.PHONY: setup run test test-fast train train-v1 train-v2 crossfit install-model lint package bench bench-quick chaos clean browser web

setup: $(STAMP) browser $(NODE_STAMP)

$(STAMP): requirements/*.txt pyproject.toml
	@$(PYTHON_SYS) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else "Python 3.12 (the Lambda runtime) is required; install it with pyenv")'
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt -r requirements/train.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Debian's chromium for the browser tests (Playwright drives /usr/bin/chromium; it never downloads one).
browser:
	@test -x /usr/bin/chromium || { echo "Installing Debian chromium"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "WARNING: could not install chromium; browser tests will be skipped"; }

run: setup
	$(PY) -m infra.run_local --port $(PORT)

test: setup lint
	$(PY) -m pytest -q -ra

test-fast: $(STAMP)
	$(PY) -m pytest -q -ra -m "not slow"

CLINICAL ?= ../shared/data/clinical/healthcare-dataset-stroke-data.csv
# Model v2 (the installed model): CT haemorrhage + DWI ischaemic lesion, router, study aggregation,
# from every source in ../shared/data (training/v2/data.py names them).
MODEL_V2_BUILD ?= build/model_v2
# Model v1 (the previous model: CT slices, haemorrhage vs normal, ../shared/data/ct-hemorrhage only).
MODEL_V1_BUILD ?= build/model
# What `make install-model` installs (`make train` and `make train-v1` set it to their build folder).
MODEL_BUILD ?= $(MODEL_V2_BUILD)

# Model v2 and the clinical model into $(MODEL_V2_BUILD) (clinical/ inside it), installed into the
# package (the installed card becomes the new card's history), then PNG copies of every chart for the
# README (docs/charts/). Each stage prints its progress.
train: $(STAMP) browser
	@echo "== make train 1/4: image model v2 -> $(MODEL_V2_BUILD)"
	$(PY) -m training.v2.train --out $(MODEL_V2_BUILD) --seed $(SEED) --bigru
	@echo "== make train 2/4: clinical risk model -> $(MODEL_V2_BUILD)/clinical"
	$(PY) -m training.clinical --data $(CLINICAL) --out $(MODEL_V2_BUILD)/clinical --seed $(SEED)
	@echo "== make train 3/4: install $(MODEL_V2_BUILD) into functions/strokelens/artifacts"
	$(MAKE) --no-print-directory install-model MODEL_BUILD=$(MODEL_V2_BUILD)
	@echo "== make train 4/4: chart images -> docs/charts"
	$(PY) -m training.chart_images

# Model v2 alone into $(MODEL_V2_BUILD), not installed (`make install-model` installs it).
train-v2: $(STAMP)
	$(PY) -m training.v2.train --out $(MODEL_V2_BUILD) --seed $(SEED) --bigru

# Cross-fitted estimate of the v2 recipe: CNN, heads and pooling re-trained per fold (ct-ich by
# study, ct-hemorrhage and mri-dwi by group, training splits only) from $(MODEL_V2_BUILD)'s inputs and
# choices (about 35 min on 2 cores; resumes; --round2 adds the second MIL round, +25 min). Writes the
# committed record docs/model_v2/crossfit/crossfit.{json,md}; `make train` sets a build's operating
# points on its out-of-fold scores and shows it in the card when the record measured that recipe.
# The folds' feature maps go to build/crossfit_maps for `python -m training.v2.headstudy`.
crossfit: $(STAMP)
	$(PY) -m training.v2.crossfit --save-maps build/crossfit_maps --cache $(MODEL_V2_BUILD)/cache.npz --metrics $(MODEL_V2_BUILD)/v2_metrics.json --seed $(SEED) --out docs/model_v2/crossfit

# The previous model (v1: CT slices of $(DATA), haemorrhage vs normal) and the clinical model into
# $(MODEL_V1_BUILD), installed in place of v2, then the chart images.
train-v1: $(STAMP) browser
	@echo "== make train-v1 1/4: image model v1 -> $(MODEL_V1_BUILD)"
	$(PY) -m training.train --data $(DATA) --out $(MODEL_V1_BUILD) --seed $(SEED)
	@echo "== make train-v1 2/4: clinical risk model -> $(MODEL_V1_BUILD)/clinical"
	$(PY) -m training.clinical --data $(CLINICAL) --out $(MODEL_V1_BUILD)/clinical --seed $(SEED)
	@echo "== make train-v1 3/4: install $(MODEL_V1_BUILD) into functions/strokelens/artifacts"
	$(MAKE) --no-print-directory install-model MODEL_BUILD=$(MODEL_V1_BUILD)
	@echo "== make train-v1 4/4: chart images -> docs/charts"
	$(PY) -m training.chart_images

# Copy exactly the catalogue's files of a trained model folder (strokelens.core.catalogue; image model
# and clinical/) into functions/strokelens/artifacts.
install-model: $(STAMP)
	$(PY) -m training.install --src $(MODEL_BUILD) --dest functions/strokelens/artifacts

# The site's only build step: plotly.js copied from the installed plotly package and dcmjs from
# node_modules (pinned by package-lock.json) into web/vendor/ (no CDN).
web: $(STAMP) $(NODE_STAMP)
	$(PY) -m infra.build_web

# ESLint for the site's JavaScript and dcmjs for the site (web/vendor/), pinned by package.json +
# package-lock.json (npm ci installs exactly the lockfile). Re-installed only when those change;
# Debian's nodejs/npm when missing.
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "Installing Debian nodejs and npm"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $(NODE_STAMP)

# SAM CLI lives in its own venv: its pins would fight the project's.
SAM_STAMP := .venv-sam/.installed
$(SAM_STAMP): requirements/sam.txt
	test -x .venv-sam/bin/python || $(PYTHON_SYS) -m venv .venv-sam
	.venv-sam/bin/python -m pip install --quiet -r requirements/sam.txt
	touch $(SAM_STAMP)

# checkov (security checks of the template) too: exits non-zero on any failed check. Accepted
# trade-offs and false positives are skipped per resource in template.yaml, each with its reason.
CHECKOV_STAMP := .venv-checkov/.installed
$(CHECKOV_STAMP): requirements/checkov.txt
	test -x .venv-checkov/bin/python || $(PYTHON_SYS) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet -r requirements/checkov.txt
	touch $(CHECKOV_STAMP)

lint: $(STAMP) $(SAM_STAMP) $(CHECKOV_STAMP) $(NODE_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy functions/strokelens
	node_modules/.bin/eslint --max-warnings 0 web eslint.config.js
	$(VENV)/bin/cfn-lint template.yaml
	AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 .venv-sam/bin/sam validate --lint --template template.yaml
	.venv-checkov/bin/checkov --framework cloudformation -f template.yaml --quiet --compact --skip-download

# Benchmarks (not part of `make test`): bench/report.json + bench/report.md; full mode also rewrites docs/benchmarks.md.
bench: $(STAMP)
	$(PY) -m benchmarks --out bench

bench-quick: $(STAMP)
	$(PY) -m benchmarks --quick --out bench

# Fault injection on the local stack (not part of `make test`; a 40-scan version is): SCANS scans,
# readers killed, AWS throttled, malformed and duplicate messages. Prints one summary line and exits
# non-zero if a scan is stuck, lost or read twice. PYTHONPATH: this checkout's code, even in a worktree.
SCANS ?= 300
chaos: $(STAMP)
	PYTHONPATH=.:functions $(PY) -m infra.chaos --scans $(SCANS) --seed $(SEED)

package: $(STAMP)
	$(PY) infra/package.py inference build/inference --zip
	$(PY) infra/package.py api build/api --zip

clean:
	rm -rf build .aws-sam .pytest_cache bench
