#!/usr/bin/env bash
# Builds spire-server and spire-agent v1.13.3 for the SPIRE provider's
# integration tests and prints the folder that holds them:
#
#   dir=$(deploy/local/spire.sh)        # then NHI_SPIRE_DIR=$dir go test ./response/providers/spire/...
#
# The folder is NHI_SPIRE_DIR when set, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/nhisentry/peers/spire-v1.13.3; nothing is
# rebuilt when both binaries are already there.
#
# `go install …@v1.13.3` does not work against a module proxy that refuses
# SPIRE's version list (go install reads it to check deprecation), so the
# module is downloaded by exact version and built from a writable copy of its
# folder, with its own go.sum. A cold build takes ~9 minutes and ~4 GB of
# memory, so builds of big peers are serialised machine-wide with flock.
set -euo pipefail

version=v1.13.3
out=${NHI_SPIRE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nhisentry/peers/spire-$version}
lock=/tmp/nhisentry-peer-build.lock

built() {
	[ -x "$out/spire-server" ] && [ -x "$out/spire-agent" ]
}

if built; then
	echo "$out"
	exit 0
fi

command -v go >/dev/null || { echo "spire: go is not installed" >&2; exit 1; }
command -v flock >/dev/null || { echo "spire: flock is not installed (util-linux)" >&2; exit 1; }

mkdir -p "$out"
work=$(mktemp -d)
# Binaries are built next to their final place so the last step is a rename.
bin=$(mktemp -d "$out/.build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work" "$bin"' EXIT

echo "spire: downloading github.com/spiffe/spire@$version" >&2
src=$(go mod download -json "github.com/spiffe/spire@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] || { echo "spire: go mod download gave no module folder" >&2; exit 1; }
cp -r "$src" "$work/src"
chmod -R u+w "$work/src"

echo "spire: building spire-server and spire-agent (waits for $lock)" >&2
(cd "$work/src" && flock "$lock" bash -c 'start=$SECONDS && go build -o "$1" ./cmd/spire-server ./cmd/spire-agent &&
	echo "spire: built in $((SECONDS - start))s" >&2' build "$bin/")
# Moved in only when both are complete, so a killed build never looks done.
mv "$bin/spire-server" "$bin/spire-agent" "$out/"
echo "$out"
