# The two commands of the README: `make demo` and `make test`. Both build .venv/ first.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: venv demo test release figures

# Fast when the environment is already built and linked (see the scripts): bubblewrap for the
# grading sandbox, then the Python environment.
venv:
	@scripts/system_packages.sh
	@scripts/make_venv.sh

demo: venv
	$(VENV)/bin/nncourse demo

test: venv
	$(PY) -m pytest

# Regenerates release/ and solutions/ from source/ (commit the result).
release: venv
	for ps in $$(ls source); do $(VENV)/bin/nncourse release $$ps || exit 1; done

figures: venv
	$(VENV)/bin/nncourse figures
