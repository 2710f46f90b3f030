#!/usr/bin/env bash
# Makes the Kubernetes peers of the response tests available: Debian's etcd
# (installed with apt-get when missing) and kube-apiserver v1.37.2, built from
# k8s.io/kubernetes through a wrapper module made in a temporary folder
# (k8s.io/kubernetes cannot be built on its own: its go.mod replaces every
# staging module with a local path). The binary is kept in a cache folder, so
# only the first run builds (~8 min cold on 2 cores, ~3 GB peak memory).
#
#   deploy/local/kube-apiserver.sh      # prints the kube-apiserver path
#
# The tests read NHI_KUBE_APISERVER (default: the cached binary below) and
# NHI_ETCD (default: etcd on PATH, else /usr/bin/etcd).
set -euo pipefail

version=1.37.2
staging=0.37.2
cache=${XDG_CACHE_HOME:-$HOME/.cache}/nhisentry/peers/kube-apiserver-v$version
bin=$cache/kube-apiserver
go=${GO:-go}

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_etcd() {
	if [ -n "${NHI_ETCD:-}" ] || command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ]; then return; fi
	echo "kube-apiserver: installing Debian's etcd-server with apt-get" >&2
	# Keep the package's postinst from starting a system etcd.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
		as_root chmod +x /usr/sbin/policy-rc.d
		trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
}

build_apiserver() {
	local work
	work=$(mktemp -d)
	trap 'rm -rf "$work"' RETURN
	cd "$work"
	export GOTOOLCHAIN=local GOFLAGS=-mod=mod
	# The replace list mirrors kubernetes' own: every staging module at the
	# matching published version.
	local gomod
	gomod=$("$go" mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
	{
		printf 'module kubebuild\n\ngo 1.26.0\n\ngodebug default=go1.26\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$version"
		sed -n '/^replace (/,/^)/p' "$gomod" | awk -v v="v$staging" '/=>/{print "\t" $1 " => " $1 " " v}'
		printf ')\n'
	} >go.mod
	printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' >tools.go
	echo "kube-apiserver: resolving modules" >&2
	"$go" mod tidy >&2
	echo "kube-apiserver: building v$version (first build takes minutes)" >&2
	local pkg=k8s.io/component-base/version minor=${version#1.}
	flock /tmp/nhisentry-peer-build.lock "$go" build -trimpath \
		-ldflags "-s -w -X $pkg.gitVersion=v$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor%%.*}" \
		-o "$work/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
	mkdir -p "$cache"
	mv "$work/kube-apiserver" "$bin.tmp"
	mv "$bin.tmp" "$bin"
}

install_etcd
if [ ! -x "$bin" ]; then
	start=$SECONDS
	(build_apiserver)
	echo "kube-apiserver: built in $((SECONDS - start)) s" >&2
fi
echo "$bin"
