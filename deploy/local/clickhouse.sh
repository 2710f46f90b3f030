#!/usr/bin/env bash
# Runs a project-local ClickHouse for the demo and the tests: Debian's
# clickhouse-server, installed with apt-get when missing, listening on
# loopback on ports that do not clash with a ClickHouse the user already runs,
# with its data under .local/clickhouse in the checkout.
#
#   deploy/local/clickhouse.sh start   # install if needed, start, wait until ready
#   deploy/local/clickhouse.sh stop
#   deploy/local/clickhouse.sh status
#
# Ports: NHI_CH_TCP_PORT (default 19000, native protocol), NHI_CH_HTTP_PORT
# (default 18123), NHI_CH_TLS_PORT (default 19440, native protocol over TLS
# with a self-signed certificate for 127.0.0.1 made on first start in
# .local/clickhouse/tls/cert.pem, which clients use as their CA).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
dir="$root/.local/clickhouse"
tcp_port=${NHI_CH_TCP_PORT:-19000}
http_port=${NHI_CH_HTTP_PORT:-18123}
tls_port=${NHI_CH_TLS_PORT:-19440}

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

server_bin() {
	command -v clickhouse-server 2>/dev/null || { [ -x /usr/sbin/clickhouse-server ] && echo /usr/sbin/clickhouse-server; } || true
}

install() {
	if [ -n "$(server_bin)" ] && command -v curl >/dev/null && command -v openssl >/dev/null; then return; fi
	echo "clickhouse: installing Debian's clickhouse-server with apt-get" >&2
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clickhouse-server curl ca-certificates openssl >/dev/null
}

ready() {
	curl -fsS "http://127.0.0.1:$http_port/ping" >/dev/null 2>&1
}

make_cert() {
	[ -s "$dir/tls/cert.pem" ] && [ -s "$dir/tls/key.pem" ] && return
	mkdir -p "$dir/tls"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
		-subj "/CN=nhisentry local clickhouse" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
		-keyout "$dir/tls/key.pem" -out "$dir/tls/cert.pem" 2>/dev/null
}

write_config() {
	mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/log"
	make_cert
	cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$dir/log/clickhouse-server.log</log>
        <errorlog>$dir/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$tcp_port</tcp_port>
    <http_port>$http_port</http_port>
    <tcp_port_secure>$tls_port</tcp_port_secure>
    <openSSL>
        <server>
            <certificateFile>$dir/tls/cert.pem</certificateFile>
            <privateKeyFile>$dir/tls/key.pem</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>1073741824</uncompressed_cache_size>
    <mark_cache_size>536870912</mark_cache_size>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
XML
	cat >"$dir/users.xml" <<'XML'
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
XML
}

start() {
	install
	if ready; then
		echo "clickhouse: already running on 127.0.0.1:$tcp_port" >&2
		return
	fi
	write_config
	local bin
	bin=$(server_bin)
	# Started detached so it outlives this script.
	(cd "$dir" && setsid "$bin" --config-file="$dir/config.xml" \
		>"$dir/log/stdout.log" 2>&1 </dev/null &)
	for _ in $(seq 1 120); do
		if ready; then
			echo "clickhouse: ready on 127.0.0.1:$tcp_port (native), 127.0.0.1:$http_port (http)" >&2
			return
		fi
		sleep 0.5
	done
	echo "clickhouse: did not become ready in 60 s; last log lines:" >&2
	tail -n 20 "$dir/log/clickhouse-server.err.log" "$dir/log/stdout.log" >&2 || true
	exit 1
}

stop() {
	# Found by its configuration path, so only this checkout's server stops.
	local pids
	pids=$(pgrep -f -- "--config-file=$dir/config.xml" || true)
	[ -n "$pids" ] || return 0
	kill $pids 2>/dev/null || true
	for _ in $(seq 1 60); do
		pgrep -f -- "--config-file=$dir/config.xml" >/dev/null || return 0
		sleep 0.5
	done
	echo "clickhouse: still running after 30 s" >&2
	exit 1
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) if ready; then echo running; else echo stopped; exit 1; fi ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
