# Sourced by scripts/test and scripts/compare: builds the wheel and installs it, with the given
# extras, into .venv (override with FASTLRU_VENV). Tests and benchmarks run against the
# installed wheel, never the source tree.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${FASTLRU_VENV:-$ROOT/.venv}
PY=$VENV/bin/python

setup_env() {
    local extras=$1
    [ -x "$PY" ] || python3 -m venv "$VENV"
    "$PY" -m pip install -q --disable-pip-version-check -U pip build
    rm -rf "$ROOT/dist"
    echo "== building the wheel" >&2
    "$PY" -m build --wheel --outdir "$ROOT/dist" "$ROOT" >"$VENV/build.log" 2>&1 \
        || { cat "$VENV/build.log" >&2; exit 1; }
    local wheel
    wheel=$(ls "$ROOT"/dist/fastlru-*.whl)
    "$PY" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"
    "$PY" -m pip install -q --disable-pip-version-check "${wheel}[${extras}]"
    # A wheel that silently fell back to pure Python is a failed build.
    (cd / && "$PY" -c 'import sys, fastlru, ormcache
sys.exit(0 if fastlru.IMPLEMENTATION == ormcache.IMPLEMENTATION == "c" else "a compiled module is missing")')
}
