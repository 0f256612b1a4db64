#!/usr/bin/env bash
# Installs the Debian packages the build, tests and demo need (given `fuzz`, also the fuzzers'; given
# `python`, also venv and headers for `pip install .`). Idempotent and fast when all are present.
set -euo pipefail
packages=(build-essential cmake ninja-build libdnnl-dev nlohmann-json3-dev libcli11-dev
          libgtest-dev libbenchmark-dev zlib1g-dev dict-gcide dictzip
          ocl-icd-opencl-dev opencl-c-headers  # Debian's dnnl CMake config requires OpenCL
          libsentencepiece-dev pkg-config   # SentencePiece tokenizers (spiece.model), found through pkg-config
          libopenmpi-dev openmpi-bin)          # data-parallel training (docs/DISTRIBUTED.md)
# `bootstrap.sh fuzz` (make fuzz) adds clang with libFuzzer and its OpenMP runtime.
if [ "${1:-}" = fuzz ]; then packages+=(clang libclang-rt-14-dev libomp-14-dev); fi
# `bootstrap.sh python` (the README's `pip install .`) adds what a virtual environment and the
# extension module need from Debian.
if [ "${1:-}" = python ]; then packages+=(python3-venv python3-dev python3-pip); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "bootstrap: installing ${missing[*]}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
