#!/usr/bin/env bash
# The crate's `unsafe` code (src/fork_join/scope.rs, src/base/location_cell.rs) under miri: their unit tests,
# which also run a real pool (workers, shutdown) around it, under four thread-schedule seeds.
# Tree borrows and no leak check:
# crossbeam-epoch (inside crossbeam-deque) keeps its global collector for the process's
# lifetime and is known to trip stacked borrows' experimental rules.
set -euo pipefail
if ! rustup toolchain install nightly --profile minimal --component miri,rust-src >/dev/null 2>&1 \
  || ! cargo +nightly miri setup >/dev/null 2>&1; then
  echo "miri: SKIPPED (could not install the nightly toolchain with miri on this machine)"
  exit 0
fi
MIRIFLAGS="-Zmiri-disable-isolation -Zmiri-tree-borrows -Zmiri-ignore-leaks -Zmiri-many-seeds=0..4" \
  cargo +nightly miri test --lib --target-dir target/miri -- fork_join::scope::tests base::location_cell::tests
