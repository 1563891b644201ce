# Shared by the benchmark scripts: source it after setting BENCH_NAME.

log() { echo "[$BENCH_NAME] $*" >&2; }

# Installs a Debian package (apt-get update once per run); the only network the benchmarks use.
APT_UPDATED=0
apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "$BENCH_NAME: $1 is missing and apt-get is not available" >&2; exit 2
  fi
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq >&2; APT_UPDATED=1; fi
  log "installing Debian package $1"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >&2
}
