# udr's build and test entry points. `make test` is the command CI runs.
GO ?= go

.PHONY: build test fuzz bench netbench

build:
	$(GO) build -o udr ./cmd/udr

# Unit tests, golden pcaps, and (as root) the network-namespace tests, with
# the race detector; then 30 s of fuzzing of the pipeline.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m ./...
	$(GO) test -run '^$$' -fuzz '^FuzzPipeline$$' -fuzztime 30s ./forwarder

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./bench ./sched ./conntrack ./forwarder

# The live benchmark against the kernel's DR path and HAProxy, as root: 3
# repetitions of 5 s per case; it rewrites the table in bench/README.md.
netbench:
	$(GO) run ./bench/netbench
