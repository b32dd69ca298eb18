#!/bin/sh
# Prove a built wheel installs and runs where no compiler exists: a fresh
# virtualenv, CC/CXX pointing at /bin/false, binary packages only, and the
# daemon started from outside the source tree.
#
#   scripts/check_wheel.sh [path/to/emsfast-*.whl]   (default: newest in dist/)
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
wheel=${1:-$(ls -t "$here"/dist/emsfast-*manylinux*.whl 2>/dev/null | head -n 1)}
if [ -z "$wheel" ] || [ ! -f "$wheel" ]; then
    echo "check_wheel: no wheel given and none in dist/ (run 'make wheel')" >&2
    exit 2
fi
python=${PYTHON:-python3}
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$here/emsfast/_version.py")

work=$(mktemp -d "${TMPDIR:-/tmp}/emsfast-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
# A wheel that needed compiling (or a dependency without a wheel) fails here.
CC=/bin/false CXX=/bin/false "$work/venv/bin/pip" install -q --only-binary :all: "$wheel"

cd "$work"    # not the source tree: the installed package must be the one imported
out=$(CC=/bin/false "$work/venv/bin/emsfastd" -version)
echo "$out"
[ "$out" = "emsfastd $version" ] || { echo "check_wheel: expected 'emsfastd $version'" >&2; exit 1; }
"$work/venv/bin/python" -c '
import emsfast, emsfast._core as core
assert core.COMPILED
assert "site-packages" in emsfast.__file__, emsfast.__file__
print("native core compiled; imported from", emsfast.__file__)
'
echo "check_wheel: OK: $(basename "$wheel")"
