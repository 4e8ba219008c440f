# GridEdge: build, test, cross-compile, benchmark and demo.
# `make demo` and `make test` install what is missing (Debian, as root) first.

SHELL := /bin/bash
export PATH := /opt/swift/usr/bin:$(PATH)

SWIFT ?= swift
JOBS ?= $(shell nproc)

.PHONY: help deps build test unit fuzz embedded cross cross-test size bench soak lint format demo clean

help:
	@echo "make demo        start broker, gridedge-hq and gridedge; show what happens"
	@echo "make test        everything CI checks: unit + integration tests, Embedded, ARM, lint"
	@echo "make cross       Embedded binaries for x86_64, aarch64, armv7 in .cross/bin/"
	@echo "make cross-test  the ARM binaries under qemu against a real broker"
	@echo "make size        stripped sizes and linked libraries (budget 2 MB)"
	@echo "make bench       benchmark figures (one 'bench NAME VALUE UNIT' line each)"
	@echo "make soak        long fault runs (power loss, broker kills, network, clock, fuzz): a table of figures"
	@echo "make fuzz        libFuzzer: DL/T 645 decoder, commands/batches/acks, config parser (FUZZ_SECONDS each)"
	@echo "make format      swift format the sources in place"

deps:
	@bash .ci/deps.sh

build: deps
	$(SWIFT) build -j $(JOBS)

unit: deps
	$(SWIFT) build -j $(JOBS) --build-tests
	$(SWIFT) test -j $(JOBS) --skip-build

fuzz: deps
	bash .ci/fuzz.sh

embedded: deps
	bash cross/build.sh host

cross: deps
	bash cross/build.sh all

cross-test: cross
	bash cross/test.sh all

size: cross
	bash cross/size.sh

bench: size
	bash .ci/bench.sh

soak: deps
	bash .ci/soak.sh

lint:
	$(SWIFT) format lint --strict --recursive --configuration .swift-format Package.swift Sources Tests

format:
	$(SWIFT) format format --in-place --recursive --configuration .swift-format Package.swift Sources Tests

test: deps lint unit fuzz cross-test size
	@echo "make test: all steps passed"

demo: deps
	bash .ci/demo.sh

clean:
	rm -rf .build .cross .demo
