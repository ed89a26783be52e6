#!/usr/bin/env bash
# Build the ROS 2 side of ftpfusion_ros (msg/ interfaces, launch/config share files, the `ros2 run`
# executables) with pip-installed tools only, into build/ and install/ (out of tree, git-ignored).
#
#   tools/ros_build.sh [--force]
#
# Idempotent and fast when nothing changed:
#   1. installs the colcon/ament/rosidl pip toolchain (requirements-ros-build.txt) into .venv if missing,
#   2. rewrites the builder paths hard-coded in the ROS wheels' *Export.cmake files (once),
#   3. runs `colcon build` only when msg/, CMakeLists.txt, package.xml, setup.py (entry points), scripts/,
#      launch/ or config/ changed since the last successful build (or with --force).
# Python sources are not a build input on purpose: tests and nodes import the source package, which
# finds the generated ftpfusion_ros.msg in install/ through AMENT_PREFIX_PATH (see ftpfusion_ros/__init__.py).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
PY=$VENV/bin/python
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

if [[ ! -x $PY ]]; then
  echo "ros_build: $PY missing; run 'make venv' first" >&2
  exit 1
fi

# 1. Toolchain: reinstall only when requirements-ros-build.txt changed (stamp holds its hash).
TOOLS_STAMP=$VENV/.ros-build-tools
req_hash=$(sha256sum requirements-ros-build.txt constraints.txt | sha256sum | cut -d' ' -f1)
if [[ ! -f $TOOLS_STAMP || "$(cat "$TOOLS_STAMP")" != "$req_hash" || ! -x $VENV/bin/colcon ]]; then
  echo "ros_build: installing the colcon/ament/rosidl toolchain into $VENV"
  "$PY" -m pip install -q --disable-pip-version-check -c constraints.txt -r requirements-ros-build.txt \
    2>&1 | grep -v -E "^WARNING: (Location|Skipping)" || true
  "$PY" -c "import colcon_core, ament_package, rosidl_generator_py" \
    || { echo "ros_build: toolchain install failed" >&2; exit 1; }
  echo "$req_hash" > "$TOOLS_STAMP"
fi

# 2. The wheels were built under /opt/python/cp3XX-cp3XX: point their exported CMake paths at this
#    venv's Python include dir and site-packages. Files already rewritten no longer match (idempotent).
PY_INCLUDE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
PY_SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
mapfile -t exports < <(grep -rlE "/opt/python/cp3[0-9]+-cp3[0-9]+" "$VENV/share" --include="*Export.cmake" 2>/dev/null || true)
if (( ${#exports[@]} )); then
  echo "ros_build: rewriting ${#exports[@]} *Export.cmake files to $PY_INCLUDE and $PY_SITE"
  sed -i -E \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${PY_INCLUDE}#g" \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages#${PY_SITE}#g" \
    "${exports[@]}"
fi

# 3. Build when an input changed. The stamp records the inputs' hash and the venv it was built with.
BUILD_STAMP=$ROOT/install/.ftpfusion_ros_build_stamp
inputs_hash=$( { echo "$VENV"; find msg scripts launch config -type f ! -name "*.pyc" -print0 \
  | sort -z | xargs -0 sha256sum; sha256sum CMakeLists.txt package.xml setup.py; } | sha256sum | cut -d' ' -f1)
if [[ $FORCE == 0 && -f $BUILD_STAMP && "$(cat "$BUILD_STAMP")" == "$inputs_hash" \
      && -d install/ftpfusion_ros/share/ftpfusion_ros ]]; then
  exit 0
fi
echo "ros_build: colcon build (msg/, CMakeLists.txt or share files changed)"
# A build tree configured for another checkout location (a moved or copied repository) cannot be reused.
CACHE=build/ftpfusion_ros/CMakeCache.txt
if [[ -f $CACHE ]] && ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$ROOT" "$CACHE"; then
  echo "ros_build: build/ was configured elsewhere; starting clean"
  rm -rf build/ftpfusion_ros install/ftpfusion_ros
fi
export PATH=$VENV/bin:$PATH
export CMAKE_PREFIX_PATH=$VENV
export AMENT_PREFIX_PATH=$VENV
# No ROS_DISTRO setup sourced here: everything comes from the venv. Quiet unless it fails.
log=$(mktemp)
if ! "$VENV/bin/colcon" --log-base log build --build-base build --install-base install \
     --packages-select ftpfusion_ros --event-handlers console_cohesion- summary- \
     --cmake-args -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "ros_build: colcon build failed" >&2
  exit 1
fi
rm -f "$log"
echo "$inputs_hash" > "$BUILD_STAMP"
echo "ros_build: built into install/ftpfusion_ros"
