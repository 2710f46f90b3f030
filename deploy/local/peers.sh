#!/usr/bin/env bash
# Installs the Debian packages the integration tests run as real peers:
# rsyslog with its TLS drivers (the syslog output's receiver), Prometheus
# with promtool (scrapes /metrics, checks the alerting rules) and ZooKeeper
# (the coordination a ClickHouse cluster's Replicated tables need). The tests
# start and stop their own private instances on loopback; the packages'
# system services are never started.
#
#   deploy/local/peers.sh install
set -euo pipefail

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

have() {
	command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]
}

case "${1:-install}" in
install)
	missing=()
	have rsyslogd || missing+=(rsyslog)
	[ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so ] || ls /usr/lib/*/rsyslog/lmnsd_ossl.so >/dev/null 2>&1 || missing+=(rsyslog-openssl)
	{ have prometheus && have promtool; } || missing+=(prometheus)
	{ have java && [ -e /usr/share/java/zookeeper.jar ] && [ -e /usr/share/java/slf4j-simple.jar ]; } || missing+=(zookeeper libslf4j-java)
	if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
	echo "peers: installing ${missing[*]} with apt-get" >&2
	# Keep the packages' postinst from starting system daemons.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
		as_root chmod +x /usr/sbin/policy-rc.d
		trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	;;
*)
	echo "usage: $0 install" >&2
	exit 2
	;;
esac
