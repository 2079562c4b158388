#!/usr/bin/env bash
# The library builds on its declared minimum Rust version (`rust-version` in Cargo.toml), with
# every feature but `tokio`: that one follows tokio's own minimum (1.85 for the tokio version in
# Cargo.lock; cargo's MSRV-aware resolver picks an older tokio for older compilers).
set -euo pipefail
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
if ! rustup toolchain install "$msrv" --profile minimal >/dev/null 2>&1; then
  echo "msrv: SKIPPED (could not install Rust $msrv on this machine)"
  exit 0
fi
cargo +"$msrv" check -p taskrunner --lib --features test-util,batch,registry
# Without the optional parts too.
cargo +"$msrv" check -p taskrunner --lib --no-default-features
