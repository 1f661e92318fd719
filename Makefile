# Every target is one line; CI runs `make test` (see .ci/run).
.PHONY: run test check bench bench-22k
run:   ; go run ./cmd/liveroom serve
test:  ; go test -race -count=1 -timeout 20m ./...
check: ; gofmt -l . | (! grep .) && go vet ./... && staticcheck ./...
bench: ; go test -run '^$$' -bench . -benchtime 2000x ./gateway/ ./fanout/
bench-22k: ; ./loadgen/bench-22k.sh --chat-burst-rate 220 --cheer-burst-rate 3000
