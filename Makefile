# nhisentry — every target installs what it needs (Debian's ClickHouse via
# apt-get, Go modules via the module proxy).
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
BIN := bin/nhisentry
# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# fail a clean run with "context deadline exceeded" at the deadline on a
# loaded machine (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 20000x

.PHONY: help demo test peers build vet fmt-check tidy-check modern-clickhouse fuzz bench soak bench-micro quality clickhouse clickhouse-stop clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

demo: clickhouse build ## run the whole pipeline on this machine, print the findings, respond to one in a local kube-apiserver
	deploy/local/kube-apiserver.sh >/dev/null
	$(BIN) demo

test: clickhouse peers vet fmt-check tidy-check modern-clickhouse ## vet, gofmt, all tests with -race (integration ones on the real servers), SQL on current ClickHouse, short fuzzing
	CI=$${CI:-true} $(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz

peers: ## install or build the peers the integration tests run: rsyslog, Prometheus, etcd (Debian); SPIRE and kube-apiserver (built once, cached)
	deploy/local/peers.sh install
	deploy/local/kube-apiserver.sh >/dev/null
	deploy/local/spire.sh >/dev/null

build: ## build bin/nhisentry
	$(GO) build -o $(BIN) ./cmd/nhisentry

vet: ## go vet
	$(GO) vet ./...

fmt-check: ## fail when gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

tidy-check: ## fail when go.mod or go.sum is not tidy
	$(GO) mod tidy -diff

modern-clickhouse: ## run the schema and chstore's queries on current ClickHouse (chDB, ../shared/tools)
	GO=$(GO) deploy/local/modern-clickhouse.sh

fuzz: ## run every decoder fuzz test for FUZZTIME
	@for pkg in $$($(GO) list ./ingest/...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

bench: clickhouse build ## throughput and latency: per-core decode+detect vs parse-only, Kafka → ClickHouse → findings end to end (BENCH_FLAGS='--backlog 300000')
	$(GO) run ./bench/cmd/bench --bin $(BIN) $(BENCH_FLAGS)

soak: clickhouse build ## not in CI: a fixed input rate for a long time, RSS, goroutines, lag and latency every interval, then a leak verdict (SOAK_FLAGS='--rate 5000 --duration 10m --interval 30s')
	$(GO) run ./bench/cmd/soak --bin $(BIN) $(SOAK_FLAGS)

bench-micro: ## run the micro-benchmarks
	$(GO) test -run='^$$' -bench=. -benchmem ./...

quality: ## score nhisentry's findings and a naive "new terms" method against the generator's labeled attacks (QUALITY_FLAGS='--days 7')
	$(GO) run ./bench/cmd/quality $(QUALITY_FLAGS)

clickhouse: ## install (apt-get) and start the project-local ClickHouse on 127.0.0.1:19000
	deploy/local/clickhouse.sh start

clickhouse-stop: ## stop the project-local ClickHouse
	deploy/local/clickhouse.sh stop

clean: ## remove build output and the local ClickHouse data
	deploy/local/clickhouse.sh stop
	rm -rf bin .local
