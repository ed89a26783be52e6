# Two commands for a fresh machine with Python 3.11:  `make demo`  and  `make test`.
# Both create/refresh the local virtual environment .venv (idempotent; a no-op when nothing changed).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PIP    := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: venv ros demo test bench clean

venv: $(STAMP)

$(STAMP): setup.py constraints.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) (first time ~2 min)"
	@$(PIP) "setuptools>=77.0.3,<80" wheel 2>&1 | grep -v "^WARNING: Location" || true
	@$(PIP) --no-build-isolation -r requirements-dev.txt -e . 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -c "import torch, cv2, ftpfusion_ros" || (echo "install failed" >&2; exit 1)
	@touch $(STAMP)

# The ROS side (msg/ interfaces, launch/config share files, `ros2 run` executables) with pip-installed
# colcon/ament/rosidl into build/ and install/; a no-op when msg/, CMakeLists.txt & co. are unchanged.
ros: venv
	@bash tools/ros_build.sh

demo: ros
	$(PY) -m ftpfusion_ros.cli.main demo --out demo_output

test: ros
	$(PY) -m pytest -q test

clean:
	rm -rf $(VENV) build install log demo_output
