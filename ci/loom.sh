#!/usr/bin/env bash
# Loom models of the scheduler's state machines (src/loom_tests), run against the real code
# through the crate::base::shim shim. Release build with debug assertions, preemption bound 2.
set -euo pipefail
RUSTFLAGS="--cfg loom -C debug-assertions" LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}" \
  cargo test --lib --release --target-dir target/loom -- loom_ --test-threads=2
