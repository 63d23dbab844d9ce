# soar's build. `make run` starts the demo; `make test` runs every test.
# Everything the tests and the linters need (kube-apiserver, etcd,
# workflowcheck, golangci-lint) is built here from the Go module proxy into
# bin/, which git ignores; nothing is downloaded from anywhere else.

GO          ?= go
BIN         := $(CURDIR)/bin
KUBE_ASSETS := $(BIN)/k8s
KUBE_LDFLAGS := -s -w -X k8s.io/component-base/version.gitVersion=v1.37.2 \
	-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37
WORKFLOWCHECK_VERSION := v0.6.0
# The newest golangci-lint v2 the module proxy serves that builds with go1.26.
GOLANGCI_LINT_VERSION := v2.15.0
CHART       := deploy/helm/soar
# What the chart copies from deploy/ and playbooks/ (make chart).
CHART_FILES := rbac.yaml admission.yaml quarantine-lock.yaml incident-deployment-control.yaml \
	baseline-policies.yaml checkpoint-rbac.yaml dispatch-rbac.yaml networkpolicy.yaml
# -vet=off: go test's own vet pass (a subset of go vet) repeats what
# make lint's govet already checks on every package and test, and on a cold
# cache it first computes vet facts for every dependency: 64 s of a cold
# make test (105 s against 41 s for the same run with it off, 2026-12-05).
# -ldflags=-s: test binaries without a symbol table (stack traces and
# the race detector read the pclntab, which stays). Linking every test
# binary took 74 s with DWARF, 48 s without it (GOFLAGS below) and 37 s
# without either (2026-12-06, warm cache).
TEST_FLAGS  ?= -count=1 -timeout 20m -vet=off -ldflags=-s
# What `soar version` prints and the image is labelled with. The image's
# creation time is the commit's, so that rebuilding a commit gives the same
# digest.
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse HEAD 2>/dev/null)
COMMIT_TIME ?= $(shell git log -1 --format=%cI 2>/dev/null)
LDFLAGS      = -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# The image's architecture: `make image GOARCH=arm64`, else the host's.
IMAGE_ARCH  ?= $(or $(GOARCH),$(shell $(GO) env GOARCH))

# envtest (tests) and `soar dev --local-kube` find the binaries here.
export KUBEBUILDER_ASSETS := $(KUBE_ASSETS)

# Every go command run from here (build, lint's go list, test, the tools,
# and what tests run themselves) compiles without DWARF debug information:
# 11% less compile time on a cold cache (connectors/kube and its
# dependencies: 122 s, 109 s without), and all of them share one build
# cache. A debugger needs it back: `go build` soar yourself, outside make.
GOFLAGS += -gcflags=all=-dwarf=false
export GOFLAGS

.PHONY: all build image run test bench scale fuzz lint fmt kube-tools chromium chart helm record-histories clean

all: build

build: ## Build bin/soar.
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/soar ./cmd/soar

# The builder itself runs on the host whatever GOARCH says; it compiles soar
# for IMAGE_ARCH without cgo and assembles the image without a Docker daemon
# (hack/image, internal/image; docs/operations.md#image).
image: ## An OCI image of a static soar: bin/image/soar-oci (OCI layout) and bin/image/soar.tar (docker load).
	GOOS= GOARCH= $(GO) run ./hack/image -version "$(VERSION)" -commit "$(COMMIT)" -created "$(COMMIT_TIME)" -arch $(IMAGE_ARCH) -out $(BIN)/image

run: build kube-tools ## The demo: soar dev with a local kube-apiserver and the shipped playbooks.
	$(BIN)/soar dev --local-kube --playbooks playbooks/library

# hack/test.sh runs `go test` over every package (test/e2e and cmd/soar
# first, so that two cores are busy throughout) with the race detector's run
# and the one test that only waits beside it.
test: kube-tools chromium build $(BIN)/helm ## Every test, against real NATS, Temporal and kube-apiserver, and the shipped playbooks' author tests.
	GO="$(GO)" TEST_FLAGS="$(TEST_FLAGS)" hack/test.sh
	$(BIN)/soar playbook lint playbooks/library
	$(BIN)/soar playbook test playbooks/library

bench: kube-tools ## Benchmarks, printed as a table (raw output in bin/bench.txt).
	@mkdir -p $(BIN)
	$(GO) test -run '^$$' -bench . -benchmem ./alert/... ./playbooks/... ./console/ > $(BIN)/bench.txt
	$(GO) test -run '^$$' -bench MachineAfterIdle -benchtime 30x ./internal/testenv/ >> $(BIN)/bench.txt
	$(GO) test -run '^$$' -bench 'AlertToQuarantine$$' -benchmem -benchtime 200x ./test/e2e/ >> $(BIN)/bench.txt
	$(GO) test -run '^$$' -bench AlertToQuarantineAfterIdle -benchmem -benchtime 100x ./test/e2e/ >> $(BIN)/bench.txt
	$(GO) test -run '^$$' -bench QuarantineStorm100 -benchmem -benchtime 3x ./test/e2e/ >> $(BIN)/bench.txt
	$(GO) test -run '^$$' -bench Burst25 -benchmem -benchtime 4x ./test/e2e/ >> $(BIN)/bench.txt
	$(GO) test -run '^$$' -bench AlertStorm -benchtime 1x -timeout 30m ./test/e2e/ >> $(BIN)/bench.txt
	$(GO) test -run '^$$' -bench LockAdmission -benchtime 300x ./test/e2e/ >> $(BIN)/bench.txt
	$(GO) test -run '^$$' -bench ConsoleList -benchtime 30x ./test/e2e/ >> $(BIN)/bench.txt
	$(GO) test -run '^$$' -bench PhantomFlood -benchtime 1x -timeout 30m ./test/e2e/ >> $(BIN)/bench.txt
	@grep -E '^Benchmark' $(BIN)/bench.txt | column -t

# The scale-out test's set-up (test/e2e/scale_test.go: separate dispatch and
# worker processes, Temporal in its own process, a three-node NATS cluster)
# draining a storm with 1 and with 3 dispatchers, without kills.
# SOAR_SCALE_ALERTS and SOAR_SCALE_PODS change the storm.
scale: kube-tools ## Alerts drained per second with 1 and with 3 dispatchers, printed as a table (raw output in bin/scale.txt).
	@mkdir -p $(BIN)
	$(GO) test -run '^$$' -bench ScaleOut -benchtime 1x -timeout 30m ./test/e2e/ > $(BIN)/scale.txt
	@grep -E '^Benchmark' $(BIN)/scale.txt | column -t

# Records the Respond workflow's histories from real runs into
# workflows/testdata (all of them, or the files named in HISTORIES=a.json,b.json);
# PREFIX=name writes respond-name-<path>.json beside the old ones instead.
record-histories: kube-tools
	SOAR_RECORD_HISTORIES=$(HISTORIES) SOAR_RECORD_PREFIX=$(PREFIX) $(GO) test -count=1 -tags record -run TestRecordHistories ./test/e2e/

fuzz: ## Fuzz the alert decoder for a minute, and its allocations for half a minute.
	$(GO) test ./alert -run '^$$' -fuzz FuzzDecode -fuzztime 60s
	$(GO) test ./alert -run '^$$' -fuzz FuzzAllocation -fuzztime 30s

# go vet runs inside golangci-lint: its govet linter runs the analyzers that
# go1.26's go vet runs by default, on every package and test, with and
# without the record tag (.golangci.yml). A separate `go vet ./...` and
# `go vet -tags record` repeated that, each also analysing every dependency:
# on empty caches and two cores, make lint took 1478 s with them and 972 s
# without.
lint: $(BIN)/workflowcheck $(BIN)/golangci-lint ## gofmt, go vet (golangci-lint's govet), Temporal's workflowcheck and golangci-lint (.golangci.yml).
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(BIN)/workflowcheck ./workflows/...
	$(BIN)/golangci-lint run ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# kube-apiserver and etcd, compiled once from the module proxy (a few minutes
# on a cold cache) from a separate module so that k8s.io/kubernetes never
# enters soar's own dependency graph. That module requires every module whose
# packages soar compiles too (client-go, grpc, protobuf, otel, golang.org/x:
# about 850 packages) at soar's version, and nothing here builds with
# -trimpath, so that those packages are compiled once for both, by make
# lint; TestKubeToolsCompileSoarsVersions (internal/testenv) names a version
# that drifted.
# The console's browser tests drive Debian's headless Chromium (chromedp).
# It is the one test dependency that is not a Go module: installed with apt
# when missing, or, without root, the command to run is printed.
chromium: ## Debian's chromium, for the console's browser tests.
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then echo "installing Debian's chromium for the console's browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else echo "the console's browser tests need Chromium: run 'sudo apt-get install chromium' (or set SOAR_CHROMIUM to a Chromium binary)" >&2; exit 1; fi; }

kube-tools: $(KUBE_ASSETS)/kube-apiserver $(KUBE_ASSETS)/etcd

$(KUBE_ASSETS)/kube-apiserver: hack/kube-tools/go.mod hack/kube-tools/go.sum
	@mkdir -p $(KUBE_ASSETS)
	cd hack/kube-tools && $(GO) build -ldflags "$(KUBE_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/kube-apiserver

$(KUBE_ASSETS)/etcd: hack/kube-tools/go.mod hack/kube-tools/go.sum hack/kube-tools/etcd/main.go
	@mkdir -p $(KUBE_ASSETS)
	cd hack/kube-tools && $(GO) build -ldflags "-s -w" -o $@ ./etcd

# The chart's cluster-wide parts are deploy/'s files, copied; so is the
# playbook it ships. TestChartMatchesDeploy fails when they differ.
chart: ## Copy deploy/'s RBAC and policies and the default playbook into the Helm chart.
	@mkdir -p $(CHART)/files/playbooks
	for f in $(CHART_FILES); do cp deploy/$$f $(CHART)/files/$$f; done
	cp playbooks/library/terminal-shell-in-container.yaml $(CHART)/files/playbooks/

# helm, for the chart's tests (lint, template, the dry run), is built in
# kube-tools' module (hack/kube-tools/tools.go pins its version) at the
# Kubernetes libraries kube-apiserver is built with, so that the two share
# their compiled packages: after kube-apiserver, helm takes about 30 s on a
# cold cache instead of 100 s. That is why helm v4.3 goes with Kubernetes
# 1.37: each helm minor release is built on one Kubernetes release.
helm: $(BIN)/helm ## Build helm into bin/, for the chart's tests (make test does).

$(BIN)/helm: hack/kube-tools/go.mod hack/kube-tools/go.sum
	cd hack/kube-tools && $(GO) build -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$$($(GO) list -m -f '{{.Version}}' helm.sh/helm/v4)" -o $@ helm.sh/helm/v4/cmd/helm

$(BIN)/workflowcheck:
	GOBIN=$(BIN) $(GO) install go.temporal.io/sdk/contrib/tools/workflowcheck@$(WORKFLOWCHECK_VERSION)

# About three minutes on a cold module cache. .golangci.yml sets the record
# build tag, so test/e2e/record_test.go is linted too.
$(BIN)/golangci-lint:
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

clean:
	rm -rf $(BIN) .soar
