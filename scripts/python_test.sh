#!/usr/bin/env bash
# The Python half of `make test`: `pip install .` (the engine and reformer._core, built by
# scikit-build-core + nanobind from PyPI) into a virtual environment under the build directory, then
# pytest on tests/python against that installed package and the CLI of the build directory.
#   bash scripts/python_test.sh [BUILD_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
VENV=$BUILD/venv
PY=${PYTHON:-python3}
# A Debian python3 needs its venv module and headers as packages.
if ! "$PY" -c 'import ensurepip, os, sysconfig; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")' 2>/dev/null; then
  echo "python_test: installing python3-venv python3-dev"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv python3-dev python3-pip
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "$ROOT[test]"
cd "$BUILD"  # not the source tree, so `import reformer` is the installed package
REFORMER_CLI="$BUILD/reformer" "$VENV/bin/python" -m pytest -q "$ROOT/tests/python"
