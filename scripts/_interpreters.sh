# Sourced by scripts/interpreters, scripts/newpythons and scripts/wheels: the interpreters that
# are not installed on the machine, made from Debian's packages alone and cached outside the
# checkout (FASTLRU_INTERPRETERS, default /var/cache/fastlru-interpreters when writable, else
# ~/.cache/fastlru-interpreters), so that a second run on the same machine reuses them:
# - CPython 3.14 (GIL build, headers, gcc, venv): a Debian sid root ($CACHE/sid-root), made by
#   debootstrap and entered through `unshare --mount` + `chroot` (the host is not changed; sid's
#   python3.14 needs a newer libc6 than the host's). Run commands there with `in_root`.
# - free-threaded CPython 3.13 ($CACHE/py313t/bin/python3.13t): CPython's own source from Debian's
#   python3.13 source package, `./configure --disable-gil`, runs on the host.
# Both go through the mirror this machine's apt uses; the host's apt configuration is untouched.
set -euo pipefail
# What is installed on these interpreters is pinned by constraints/newpythons.txt (given with -c):
# constraints/test.txt, which scripts/_env.sh exports, is resolved for the GIL builds 3.9-3.13
# and would contradict it (hypothesis has no wheel of its pinned version on 3.13t).
unset PIP_CONSTRAINT

if [ -n "${FASTLRU_INTERPRETERS:-}" ]; then
    CACHE=$FASTLRU_INTERPRETERS
elif mkdir -p /var/cache/fastlru-interpreters 2>/dev/null && [ -w /var/cache/fastlru-interpreters ]; then
    CACHE=/var/cache/fastlru-interpreters
else
    CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/fastlru-interpreters
fi
SID_ROOT=$CACHE/sid-root
PY313T=$CACHE/py313t/bin/python3.13t

# debian_mirror: the first Debian archive URI of this machine's apt sources.
debian_mirror() {
    local uri
    uri=$(grep -h -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | grep -v security | head -1 | sed -E 's/^URIs: *//; s/^deb +(\[[^]]*\] +)?//; s/ .*//')
    [ -n "$uri" ] || { echo "no Debian mirror found in the apt sources" >&2; return 1; }
    echo "$uri"
}

# need_packages PKG...: installs the Debian packages that are missing (as scripts/test does for
# its servers; nothing runs when all are there).
need_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return
    echo "== installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# locked NAME CMD...: CMD under an exclusive lock of the cache (two runs never build one thing twice).
locked() {
    local name=$1
    shift
    mkdir -p "$CACHE"
    (
        flock 9
        "$@"
    ) 9>"$CACHE/.$name.lock"
}

# ensure_py314: the sid root with python3.14, made once (debootstrap into a temporary folder
# renamed when complete, so an interrupted run leaves nothing half-made).
ensure_py314() { locked sid-root _ensure_py314; }
_ensure_py314() {
    if [ ! -x "$SID_ROOT/usr/bin/python3.14" ]; then
        need_packages debootstrap
        echo "== making a Debian sid root with CPython 3.14 in $SID_ROOT (about 2 minutes)" >&2
        rm -rf "$SID_ROOT.tmp"
        nice -n 5 debootstrap --variant=minbase \
            --include=python3.14-dev,python3.14-venv,gcc,libc6-dev sid "$SID_ROOT.tmp" "$(debian_mirror)" \
            >"$CACHE/sid-root.log" 2>&1 || { tail -30 "$CACHE/sid-root.log" >&2; return 1; }
        mv "$SID_ROOT.tmp" "$SID_ROOT"
    fi
    # pip inside the root resolves and verifies PyPI with the host's settings
    cp /etc/hosts /etc/resolv.conf "$SID_ROOT/etc/"
    cp /etc/ssl/certs/ca-certificates.crt "$SID_ROOT/etc/ssl/certs/host-ca-bundle.crt"
}

# in_root DIR CMDS: runs the bash CMDS inside the sid root, in a private mount namespace where
# DIR (a host folder) is bind-mounted at the same path, with DIR as the working directory: paths
# under DIR mean the same inside and out. The mounts vanish when CMDS end.
in_root() {
    local dir=$1 cmds=$2
    mkdir -p "$dir" "$SID_ROOT$dir"
    unshare --mount --fork bash -euo pipefail -c '
        R=$1; D=$2; C=$3
        mount --make-rprivate /
        mount -t proc proc "$R/proc"
        mount --rbind /dev "$R/dev"
        mount --bind "$D" "$R$D"
        exec chroot "$R" env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 TMPDIR="$D" \
            PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
            bash -euo pipefail -c "cd \"\$0\" && $C" "$D"
    ' _ "$SID_ROOT" "$dir" "$cmds"
}

# ensure_py313t: free-threaded CPython 3.13 in $CACHE/py313t, built once (installed into a
# temporary DESTDIR, moved into place when complete).
ensure_py313t() { locked py313t _ensure_py313t; }
_ensure_py313t() {
    if "$PY313T" -c 'import sys; sys.exit(sys._is_gil_enabled())' 2>/dev/null; then
        return
    fi
    echo "== building free-threaded CPython 3.13 into $CACHE/py313t (a few minutes)" >&2
    local work mirror status=0
    need_packages build-essential pkg-config libssl-dev zlib1g-dev libffi-dev libbz2-dev \
        libsqlite3-dev liblzma-dev libreadline-dev libncurses-dev uuid-dev libexpat1-dev
    work=$(mktemp -d "${TMPDIR:-/tmp}/fastlru-py313t.XXXXXX")
    mirror=$(debian_mirror)
    set +e  # the build's own errexit holds in its subshell (it would not under ||)
    (set -e; _build_py313t "$work" "$mirror") >"$CACHE/py313t.log" 2>&1
    status=$?
    set -e
    rm -rf "$work"
    if [ $status -ne 0 ]; then
        tail -30 "$CACHE/py313t.log" >&2
        return $status
    fi
    "$PY313T" -c 'import sys; sys.exit(sys._is_gil_enabled())'
}
_build_py313t() {
    local work=$1 mirror=$2 prefix=$CACHE/py313t version ok=
    set -x
    mkdir -p "$work"/apt/{etc,state/lists/partial,cache/archives/partial} "$work/src" "$work/build"
    # a private apt configuration with the source lists: the host's own is never changed
    printf 'deb-src %s sid main\ndeb-src %s trixie main\n' "$mirror" "$mirror" >"$work/apt/etc/sources.list"
    cat >"$work/apt/apt.conf" <<CONF
Dir::Etc::SourceList "$work/apt/etc/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::State "$work/apt/state";
Dir::State::status "/var/lib/dpkg/status";
Dir::Cache "$work/apt/cache";
CONF
    export APT_CONFIG=$work/apt/apt.conf
    apt-get update -qq
    cd "$work/src"
    # some listed versions answer 404 (gone from the mirror): the newest that downloads
    for version in $(apt-cache showsrc python3.13 | sed -n 's/^Version: //p' | sort -rV); do
        if apt-get source -qq --download-only "python3.13=$version"; then ok=$version; break; fi
    done
    [ -n "$ok" ] || { echo "no python3.13 source could be downloaded"; return 1; }
    tar -xf python3.13_*.orig.tar.xz -C "$work/build"
    cd "$work"/build/Python-3.13.*/
    ./configure --prefix="$prefix" --disable-gil --with-ensurepip=install
    nice -n 5 make -j"$(nproc)"
    make install DESTDIR="$work/dest"
    rm -rf "$prefix"
    mkdir -p "$(dirname "$prefix")"
    mv "$work/dest$prefix" "$prefix"
}
