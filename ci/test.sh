#!/usr/bin/env bash
# The README's test command, verbatim: unit, integration and doc tests.
set -euo pipefail
cargo test --all-features
