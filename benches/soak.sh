#!/usr/bin/env bash
# Soak test of `crier serve`: 10 minutes of churn under wrk load and 1,000 idle connections;
# memory, fds and threads must stay flat, no 5xx, and the feeds folder must equal a clean build
# at the end. The work is done by benches/soak.py; this builds crier first and records the
# result in benches/results-soak.md. Needs wrk (Debian package `wrk`).
#
#   bash benches/soak.sh [--duration SECONDS]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
command -v wrk >/dev/null || { echo "soak: wrk is missing (apt-get install wrk)" >&2; exit 2; }
cargo build --release --quiet
exec python3 benches/soak.py --crier target/release/crier --out benches/results-soak.md "$@"
