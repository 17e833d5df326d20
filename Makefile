# sdnoc's checks. `make test` is what CI runs (.ci/run); on a fresh machine
# it fetches everything it needs itself (Go modules, staticcheck as a Go
# tool pinned in go.mod).

GO       ?= go
FUZZTIME ?= 5s
PKGS     := ./...

.PHONY: test lab-install lint unit race fuzz demo bench build

test: lab-install lint race fuzz demo
	@echo "make test: all checks passed"

# As root (CI), the namespace lab's tools are installed first (apt-get,
# only what is missing) and its tests must run, not skip.
LAB_ENV := $(shell [ "$$(id -u)" = 0 ] && echo SDNOC_REQUIRE_LAB=1)

lab-install:
	@if [ "$$(id -u)" = 0 ]; then lab/install.sh; else echo "not root: the namespace lab's tests will skip"; fi

build:
	$(GO) build -o sdnoc ./cmd/sdnoc

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)
	@bad=$$($(GO) list -deps ./decisions/... | grep -E 'gobgp|goflow2|gnmic|scrapligo|grpc|prometheus|^net$$|^net/http|sdnoc/(collectors|actuators|journal|controller)'); \
	  if [ -n "$$bad" ]; then echo "decisions must stay pure but depends on:"; echo "$$bad"; exit 1; fi

unit:
	$(GO) test $(PKGS)

# The lab's scenario suite (8 minutes of real routers, exporters and
# iperf3) runs after the rest, not beside it: on 2 cores, sharing them
# with race-instrumented tests starved the timing-based demos.
race:
	$(LAB_ENV) $(GO) test -race -count=1 $$($(GO) list $(PKGS) | grep -v '/lab/netlab$$')
	$(LAB_ENV) $(GO) test -race -count=1 -timeout 20m ./lab/netlab

# Each fuzz target runs for FUZZTIME on top of its committed corpus
# (testdata/fuzz), which `go test` already replays as unit tests. Go's
# fuzzer itself sometimes ends a run with "context deadline exceeded" and
# no failing input (CI saw it once, on FuzzReplay at 5.13 s); such a run
# is tried once more. A failing input always fails.
fuzz:
	@set -e; for spec in $$(scripts/fuzz-targets.sh); do \
	  pkg=$${spec%%:*}; target=$${spec##*:}; \
	  echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
	  run() { $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg 2>&1; }; \
	  out=$$(run) || { \
	    case "$$out" in *"Failing input"*|*"failure while testing seed corpus"*) echo "$$out"; exit 1;; \
	      *"context deadline exceeded"*) echo "  the fuzzer timed itself out; once more"; out=$$(run) || { echo "$$out"; exit 1; };; \
	      *) echo "$$out"; exit 1;; esac; }; \
	done

# The README's first command, checked end to end: it must pass; and the
# congestion scenario.
demo:
	$(GO) run ./cmd/sdnoc demo
	$(GO) run ./cmd/sdnoc demo --scenario congestion

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
