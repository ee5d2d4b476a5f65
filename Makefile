# evalharness: install, evaluate, test, benchmark. Everything installs itself on first use.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip -q --disable-pip-version-check
STAMP   := $(VENV)/.installed
SUITE   ?= suites/quick.yaml
# Debian packages: WordNet for synonym perturbations, Chromium for the browser test of reports
APT_PACKAGES ?= wordnet-base wordnet-sense-index chromium chromium-driver

.PHONY: install system-deps eval test bench clean

install: $(STAMP) system-deps

# torch==2.13.0 (CPU) first, then the project with constraints.txt pinning torch, so pip
# never resolves a newer CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	$(PIP) install -c constraints.txt -e '.[test,hub,ann,ray,track]'
	touch $(STAMP)

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "warning: missing Debian packages:$$missing (install them as root; tests that need them are skipped)"; \
	  fi; \
	fi

eval: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/evalharness run $(SUITE)

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

bench: install
	HF_HUB_OFFLINE=1 $(PY) -m evalharness.bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
