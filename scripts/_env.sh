# Sourced by scripts/test, scripts/compare, scripts/versions, scripts/asan and scripts/sdist: builds the wheel
# and installs it, with the given extras, into .venv (override with FASTLRU_VENV). Tests and
# benchmarks run against the installed wheel, never the source tree.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${FASTLRU_VENV:-$ROOT/.venv}
PY=$VENV/bin/python
PIP_QUIET=(-q --disable-pip-version-check)
# Every pip install (ours, and the one `python -m build` makes for its isolated environment)
# takes the pinned versions of constraints/test.txt (scripts/pin regenerates it), so a fresh
# clone installs what the suite passed with; FASTLRU_LATEST=1 (scripts/test-latest) lifts them.
if [ "${FASTLRU_LATEST:-}" = 1 ]; then
    unset PIP_CONSTRAINT
else
    export PIP_CONSTRAINT=$ROOT/constraints/test.txt
fi

setup_env() {
    local extras=$1
    [ -x "$PY" ] || python3 -m venv "$VENV"
    "$PY" -m pip install "${PIP_QUIET[@]}" -U pip build
    rm -rf "$ROOT/dist"
    echo "== building the wheel" >&2
    "$PY" -m build --wheel --outdir "$ROOT/dist" "$ROOT" >"$VENV/build.log" 2>&1 \
        || { cat "$VENV/build.log" >&2; exit 1; }
    install_wheel "$PY" "$(ls "$ROOT"/dist/fastlru-*.whl)" "$extras"
}

# install_wheel PY WHEEL EXTRAS: installs the wheel (forced: same version, new build) and its
# extras into PY's environment, then checks that the compiled modules are the ones in use.
install_wheel() {
    local py=$1 wheel=$2 extras=$3
    "$py" -m pip install "${PIP_QUIET[@]}" --force-reinstall --no-deps "$wheel"
    "$py" -m pip install "${PIP_QUIET[@]}" "${wheel}[${extras}]"
    check_compiled "$py"
}

# check_compiled PY: fails unless PY's installed fastlru and ormcache use their compiled modules
# (a build that silently fell back to pure Python is a failed build).
check_compiled() {
    (cd / && "$1" -c 'import sys, fastlru, ormcache
sys.exit(0 if fastlru.IMPLEMENTATION == ormcache.IMPLEMENTATION == "c" else "a compiled module is missing")')
}

# new_venv PY DIR: a fresh venv of interpreter PY in DIR, with pip and build up to date.
new_venv() {
    local py=$1 dir=$2
    rm -rf "$dir"
    "$py" -m venv "$dir"
    "$dir/bin/python" -m pip install "${PIP_QUIET[@]}" -U pip build
}

# copy_tree DEST: the source tree (tracked and untracked files, not ignored ones: no build/,
# no venv) copied to DEST, so that each build has a build/ of its own.
copy_tree() {
    local dest=$1
    mkdir -p "$dest"
    if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
            | tar --null --ignore-failed-read -T - -cf -) | tar -xf - -C "$dest"
    else
        tar -C "$ROOT" --exclude=./build --exclude=./dist --exclude='./.venv*' -cf - . | tar -xf - -C "$dest"
    fi
}

# build_wheel PY OUTDIR: builds the wheel with interpreter PY (which has `build`) from a copy of
# the tree in a temporary directory; the environment (CFLAGS, LDFLAGS...) passes through.
# Prints the wheel's path; on failure shows the build log.
build_wheel() {
    local py=$1 out=$2 work status=0
    work=$(mktemp -d "${TMPDIR:-/tmp}/fastlru-build.XXXXXX")
    mkdir -p "$out"
    copy_tree "$work/tree"
    "$py" -m build --wheel --outdir "$out" "$work/tree" >"$out/build.log" 2>&1 || status=$?
    rm -rf "$work"
    if [ $status -ne 0 ]; then
        cat "$out/build.log" >&2
        return $status
    fi
    ls "$out"/fastlru-*.whl
}

# interpreters: the CPythons to test on, one line each: every pyenv version from 3.9 up (the
# newest patch release of each minor), else the main python3 alone.
interpreters() {
    local root=${PYENV_ROOT:-$HOME/.pyenv} name minor
    local -A newest=()
    if [ -d "$root/versions" ]; then
        for name in $(ls "$root/versions" | grep -E '^3\.[0-9]+\.[0-9]+$' | sort -V); do
            minor=${name#3.}
            minor=${minor%%.*}
            [ "$minor" -ge 9 ] && [ -x "$root/versions/$name/bin/python3" ] \
                && newest[$minor]=$root/versions/$name/bin/python3
        done
    fi
    if [ ${#newest[@]} -eq 0 ]; then
        command -v python3
        return
    fi
    for minor in $(printf '%s\n' "${!newest[@]}" | sort -n); do
        echo "${newest[$minor]}"
    done
}

# python_version PY: "3.11.7"
python_version() {
    "$1" -c 'import platform; print(platform.python_version())'
}
