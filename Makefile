# udr's build and test entry points. `make test` is the command CI runs.
GO ?= go

.PHONY: build test fuzz bench netbench matrix

build:
	$(GO) build -o udr ./cmd/udr

# Unit tests, golden pcaps, and (as root) the network-namespace tests, with
# the race detector; then 30 s of fuzzing of the pipeline and 15 s of each
# other fuzz target; then, as root, the
# live benchmark in its short mode (1 repetition of 2 s per case), which
# prints its table and fails only when the harness itself fails.
test:
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./...   # the platform splits keep every package building off Linux
	$(GO) test -race -count=1 -timeout 30m ./...
	$(GO) test -run '^$$' -fuzz '^FuzzPipeline$$' -fuzztime 30s ./forwarder
	$(GO) test -run '^$$' -fuzz '^FuzzParseArgs$$' -fuzztime 15s ./admin
	$(GO) test -run '^$$' -fuzz '^FuzzIpvsadmRequest$$' -fuzztime 15s ./director
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 15s ./handoff
	$(GO) test -run '^$$' -fuzz '^FuzzSyncDecode$$' -fuzztime 15s ./ipvssync
	$(GO) test -run '^$$' -fuzz '^FuzzParseRules$$' -fuzztime 15s ./admin
	$(GO) test -run '^$$' -fuzz '^FuzzLoadConfig$$' -fuzztime 15s ./config
	$(GO) test -run '^$$' -fuzz '^FuzzKeepalived$$' -fuzztime 15s ./keepalived
	$(GO) test -run '^$$' -fuzz '^FuzzARPRequest$$' -fuzztime 15s ./arpresponder
	$(GO) test -run '^$$' -fuzz '^FuzzNDP$$' -fuzztime 15s ./arpresponder
	$(GO) test -run '^$$' -fuzz '^FuzzTCPStates$$' -fuzztime 15s ./conntrack
	$(GO) test -run '^$$' -fuzz '^FuzzAdd$$' -fuzztime 15s ./internal/checksum
	@if [ "$$(id -u)" = 0 ]; then $(GO) run ./bench/netbench -short -readme ''; \
	else echo "bench/netbench: skipped, it needs root (network namespaces)"; fi

# The director's namespace tests with every receive backend and with one and
# two workers (as root): what `make test` runs once with the socket and one.
matrix:
	@for io in socket ring ring-v2; do for w in 1 2; do \
		echo "== UDR_TEST_IO=$$io UDR_TEST_WORKERS=$$w"; \
		UDR_TEST_IO=$$io UDR_TEST_WORKERS=$$w $(GO) test -count=1 -timeout 30m -run Privileged ./director || exit 1; \
	done; done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./bench ./sched ./conntrack ./forwarder

# The live benchmark against the kernel's DR path and HAProxy, as root: 3
# repetitions of 5 s per case; it rewrites the table in bench/README.md.
netbench:
	$(GO) run ./bench/netbench
