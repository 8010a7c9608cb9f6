# drbot — developer entry points. `make test` is the one command CI runs.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOFILES      = $(shell find . -name '*.go' -not -path './.cache/*' -not -path './tools/*/vendor/*')

.PHONY: all build test unit lint fmt-check vet staticcheck clean

all: build

build:
	$(GO) build ./...

## test: lint, then every test with the race detector (the README's test command).
test: lint kube-bins
	$(GO) test -race -count=1 -timeout 15m ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZSMOKE)

## fuzz: each fuzz target for FUZZTIME (make test runs them for FUZZSMOKE). Seeds are in <pkg>/testdata/fuzz/<Target>/;
## a crasher is written there too: keep it as a seed once fixed.
FUZZTIME  ?= 2m
FUZZSMOKE ?= 5s
# go test -fuzz runs one target per invocation; bot has two.
FUZZ_TARGETS := ./bot:FuzzParseCommand ./bot:FuzzInteraction ./config:FuzzLoadConfig ./recovery/gitops:FuzzTemplates
.PHONY: fuzz
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) "$${t%%:*}"; \
	done

## sandbox: a whole recovery of 150 services on this machine against the stand-ins (builds the Kubernetes binaries
## the first time). ARGS='-interactive -fail addons.istio' to practise Retry/Skip/Abort.
.PHONY: sandbox
sandbox: kube-bins
	$(GO) run ./cmd/drbot sandbox $(ARGS)

## bench: one table (docs/benchmarks.md): modelled MTTR against the critical path and the hand process, drbot's
## own cost at 150 and 1,500 services, ack latency; JSON in .cache/bench/. CGO_ENABLED=0: the binary as it ships (Dockerfile).
.PHONY: bench
bench: kube-bins
	CGO_ENABLED=0 $(GO) test -run '^$$' -bench '^BenchmarkRecovery$$' -benchtime 1x -timeout 20m ./cmd/drbot/

## torture: crash torture, 30 SIGKILLs of a drbot child during a whole recovery (make test runs 5).
.PHONY: torture faults
torture: kube-bins
	DRBOT_TORTURE_KILLS=30 $(GO) test -race -count=1 -timeout 30m -v -run '^TestCrashTorture$$' ./cmd/drbot

## faults: fault-injection runs with 5 seeds (make test runs 1); DRBOT_FAULT_RATE and DRBOT_FAULT_SEED tune them.
faults: kube-bins
	DRBOT_FAULT_RUNS=5 $(GO) test -race -count=1 -timeout 30m -v -run '^TestFaultInjection$$' ./cmd/drbot

## generate: regenerate the checked-in generated files (docs/config.md, …); CI fails when one is stale.
.PHONY: generate
generate:
	$(GO) run ./hack/gendocs
	$(GO) run ./hack/genperms

## kube-bins: build (once; cached in .cache/kube/) the etcd, Kubernetes control-plane and KWOK binaries test/kubeenv runs.
.PHONY: kube-bins
kube-bins:
	GO=$(GO) bash hack/kube-bins.sh

## unit: the tests alone, without lint.
unit:
	$(GO) test -race -count=1 ./...

lint: fmt-check vet staticcheck

fmt-check:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run $(STATICCHECK) ./...

clean:
	rm -rf bin dist
