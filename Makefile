# chatwire — the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
PKGS := ./...

.PHONY: run test lint bench migrate build fuzz

## run: start Postgres, NATS JetStream and all four processes locally (Ctrl-C stops everything)
run:
	bash deploy/local/run.sh

## test: vet, then every test with the race detector against real Postgres and NATS
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

## lint: staticcheck (pinned as a tool in go.mod)
lint:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)

## bench: benchmarks with real Postgres and NATS; prints the figures each issue asks for
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m $(PKGS)

## migrate: apply the database migrations to DATABASE_URL (default: the local stack's database)
migrate:
	bash deploy/local/run.sh migrate

## build: the four binaries into bin/
build:
	$(GO) build -o bin/ ./cmd/...

## fuzz: run each fuzz target for FUZZTIME (default 20s)
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done
