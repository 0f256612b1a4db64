#!/usr/bin/env bash
# Fails when a library has AVX/AVX-512 (VEX/EVEX-encoded, v* or k-mask) instructions outside the
# per-ISA variants that are only called after a run-time check (src/core/cpu_isa.h): such code
# would crash with SIGILL on an x86-64 without them. Usage: check_portable_objects.sh lib.a
set -euo pipefail
lib=$1
[ -f "$lib" ] || { echo "no such library: $lib"; exit 2; }
# Functions named isa_avx2::*, isa_avx512::* or *_avx2 / *_avx512 are the variants.
bad=$(objdump -d --no-show-raw-insn "$lib" |
  awk '/^[0-9a-f]+ <.*>:/ {name = $2} /^ *[0-9a-f]+:\t(v[a-z0-9]+|k[a-z]+[bwdq]) / {hits[name]++} END {for (n in hits) print n}' |
  c++filt | grep -v -E 'isa_avx2::|isa_avx512::|_avx2\(|_avx512\(' || true)
if [ -n "$bad" ]; then
  echo "AVX instructions outside the run-time dispatched variants (this build would not run on every x86-64):"
  echo "$bad"
  exit 1
fi
echo "portable: no AVX instruction outside the dispatched variants in $lib"
