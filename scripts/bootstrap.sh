#!/usr/bin/env bash
# Installs the Debian packages the build, tests and demo need (and, given `fuzz`, the fuzzers'). Idempotent and fast when all are present.
set -euo pipefail
packages=(build-essential cmake ninja-build libdnnl-dev nlohmann-json3-dev libcli11-dev
          libgtest-dev libbenchmark-dev zlib1g-dev dict-gcide dictzip
          ocl-icd-opencl-dev opencl-c-headers  # Debian's dnnl CMake config requires OpenCL
          libsentencepiece-dev pkg-config)  # SentencePiece tokenizers (spiece.model), found through pkg-config
# `bootstrap.sh fuzz` (make fuzz) adds clang with libFuzzer and its OpenMP runtime.
if [ "${1:-}" = fuzz ]; then packages+=(clang libclang-rt-14-dev libomp-14-dev); fi
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
