# The entry points people type. `make run` and `make test` install what is missing first.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: bench-knowledge bench-webhooks run test bootstrap build fmt lint bench schema clean-test-db

bootstrap:
	@bash scripts/bootstrap

## Start the server on the embedded PostgreSQL (or DATABASE_URL) and print its URL.
run: bootstrap
	$(CARGO) build --release -p obrol-api --bin obrol
	./target/release/obrol serve

## Build everything once, then run every test (unit and black-box) with nextest.
test: bootstrap
	bash scripts/test

build:
	$(CARGO) build --workspace --all-targets

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Regenerate the committed GraphQL contract.
schema:
	$(CARGO) run -q -p obrol-api --bin obrol -- schema > schema.graphql

bench: bootstrap
	bash scripts/bench

bench-knowledge: bootstrap
	bash scripts/bench-knowledge

bench-webhooks: bootstrap
	bash scripts/bench-webhooks
