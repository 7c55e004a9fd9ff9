# nsbench: `make demo` runs the main job, `make test` runs the tests. Each creates .venv and installs what it needs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
NSBENCH := $(VENV)/bin/nsbench
STAMP := $(VENV)/.installed
# torch and torchvision are pinned to the CUDA builds that also run on CPU; override for other machines.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
DEMO_OUT ?= runs/demo
PIP := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: demo test test-all data browser syslibs clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) $(TORCH_SPEC)
	$(PIP) -e '.[test]'
	# torchattacks only as the reference the attack test compares against, outside the environment's packages:
	# it pins requests~=2.25.1 (security advisories), so it must never resolve its dependencies or count as installed
	$(PIP) --no-deps --upgrade --target $(VENV)/reference-libs torchattacks==3.5.1
	touch $(STAMP)

# Fashion-MNIST from Debian's dataset-fashion-mnist when apt is there; otherwise nsbench falls back to the HF hub.
data:
	@if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	fi

# opencv-python (what imagecorruptions-imaug requires) loads libGL.so.1 and libglib-2.0.so.0
syslibs:
	@if ! ldconfig -p | grep -q 'libGL.so.1 ' || ! ldconfig -p | grep -q 'libglib-2.0.so.0 '; then \
	  if command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgl1 libglib2.0-0; \
	  else echo "nsbench needs libGL.so.1 and libglib-2.0.so.0 (OpenCV): install them with your package manager"; fi; \
	fi

browser:
	@if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi

DEMO_REPORT ?= reports/demo

# The whole pipeline on the embedded default: train 3 iterations (resuming a killed run), evaluate the teacher and
# every student with the robustness suite (cached cells resume too), render the report and print its path.
demo: $(STAMP) data syslibs
	@if [ -f $(DEMO_OUT)/config.yaml ]; then \
	  $(NSBENCH) train --resume $(DEMO_OUT) --iterations 3; \
	else \
	  $(NSBENCH) train --recipe default --iterations 3 --out $(DEMO_OUT); \
	fi
	$(NSBENCH) eval --suite robustness $(DEMO_OUT)/iter0.pt $(DEMO_OUT)/iter1.pt $(DEMO_OUT)/iter2.pt $(DEMO_OUT)/iter3.pt \
	  --out $(DEMO_REPORT)/eval --cache $(DEMO_OUT)/cache
	$(NSBENCH) report $(DEMO_REPORT)/eval $(DEMO_OUT) --baseline $(notdir $(DEMO_OUT))-iter0 --out $(DEMO_REPORT) \
	  --title "Noisy Student on Fashion-MNIST: teacher vs students"

test: $(STAMP) data browser syslibs
	$(PY) -m pytest -q

test-all: $(STAMP) data browser syslibs
	$(PY) -m pytest -q -m ''

clean:
	rm -rf $(VENV) runs test-artifacts .pytest_cache $(DEMO_REPORT)
