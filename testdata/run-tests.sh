#!/usr/bin/env bash
# Every test of ksw, from a fresh Debian 12 machine: installs what it
# needs, makes the real-kernel fixtures the cache lacks (QEMU + kdump),
# sets up drgn as an oracle, then runs the Rust and the fixture tests
# (checkpatch.pl, fetched too, checks the kernel module's style).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

# One knob moves everything the tests make or fetch.
export KSW_CACHE="${KSW_CACHE:-$HOME/.cache/ksw}"
export KSW_FIXTURES="${KSW_FIXTURES:-$KSW_CACHE/fixtures}"
export KSW_DRGN_PYTHON="${KSW_DRGN_PYTHON:-$KSW_CACHE/drgn-venv/bin/python}"
# the tests start their own debuginfod where they want one; Debian's
# profile may point every ksw run at debuginfod.debian.net
unset DEBUGINFOD_URLS

step "host packages"
python3 testdata/pipeline deps
step "fixtures (cached under $KSW_CACHE)"
python3 testdata/pipeline all
step "drgn oracle"
python3 testdata/pipeline oracle
step "checkpatch.pl for the kernel module's style test"
python3 testdata/pipeline checkpatch
step "Rust formatting"
cargo fmt --all -- --check
step "Rust tests"
cargo test --workspace --locked
step "fixture tests"
python3 -m unittest discover -v -s testdata/tests -p 'test_*.py'
step "ksw resolve end to end: its strings arm kstackwatch.ko in QEMU"
for series in 6.1 6.12; do
	python3 crates/analyze/e2e/resolve_e2e.py "$series"
done
