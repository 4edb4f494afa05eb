# telemetry-relay. `make run` and `make test` do all set-up on a fresh machine themselves:
# rustup targets and components, Debian packages, and AWS's RIE from the aws-sam-cli wheel.
SHELL := /bin/bash
.DEFAULT_GOAL := test
.PHONY: run test fuzz layer bench bench-encode clean tools musl-x86 musl-arm rie pydeps compare-init compare-init-usage

X86 := x86_64-unknown-linux-musl
ARM := aarch64-unknown-linux-musl
X86_BIN := target/$(X86)/release/telemetry-relay
ARM_BIN := target/$(ARM)/release/telemetry-relay
LAYER := target/layer
# The wheel that carries AWS's Runtime Interface Emulator; pinned so CI is repeatable.
SAM_CLI := aws-sam-cli==1.170.0
RIE_DIR := target/rie
RIE_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER := aarch64-linux-gnu-gcc
# Static, not static-PIE: a static-PIE binary relocates itself at start (3,000 relocations,
# 75 KB of .rela.dyn, and copy-on-write faults on every page they touch). The stack, heap and
# mappings stay randomized; only the executable's own addresses are fixed.
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS := -C relocation-model=static
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS := -C relocation-model=static

# Installs Debian packages only when a command they provide is missing.
define apt
	@command -v $(1) >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; }
endef

tools:
	@cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

musl-x86:
	@rustup target list --installed | grep -qx $(X86) || rustup target add $(X86)
	$(call apt,musl-gcc,musl-tools)

musl-arm:
	@rustup target list --installed | grep -qx $(ARM) || rustup target add $(ARM)
	$(call apt,aarch64-linux-gnu-gcc,gcc-aarch64-linux-gnu)
	$(call apt,qemu-aarch64,qemu-user)

# AWS's RIE, taken from the aws-sam-cli wheel (no Docker needed; see tests/rie.rs).
rie: $(RIE_DIR)/aws-lambda-rie-$(RIE_ARCH)
$(RIE_DIR)/aws-lambda-rie-$(RIE_ARCH):
	$(call apt,unzip,unzip)
	$(call apt,ip,iproute2)
	@mkdir -p $(RIE_DIR)/wheel
	python3 -m pip download --quiet --no-deps --dest $(RIE_DIR)/wheel "$(SAM_CLI)"
	unzip -o -j -q $(RIE_DIR)/wheel/*.whl samcli/local/rapid/aws-lambda-rie-$(RIE_ARCH) -d $(RIE_DIR)
	chmod 755 $@

# Third-party validators the output tests run (tests/validate/), in a venv of their own.
PY := target/py/bin/python
PYDEPS := jsonschema==4.26.0 opentelemetry-proto==1.45.2 rotel==0.0.1a15 trustme==1.2.1 botocore==1.44.8 'moto[server]==5.2.5'
PY_STAMP := target/py/.deps-$(shell echo '$(PYDEPS)' | md5sum | cut -c1-8)
pydeps: $(PY_STAMP)
$(PY_STAMP):
	python3 -m venv target/py
	$(PY) -m pip install --quiet --disable-pip-version-check $(PYDEPS)
	touch $@

# Formatting, lints, unit and integration tests; then the release binary under AWS's RIE
# (shown with --nocapture so a skip and its reason are visible).
test: tools musl-x86 rie pydeps
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo build --release --target $(X86) --bin telemetry-relay
	cargo test -- --skip under_aws_rie
	cargo test --test rie -- --nocapture

# The parser and every encoder, fuzzed (src/fuzz.rs): FUZZ_ITERATIONS inputs per target in a
# release build; `make test` runs 2,000 of each.
FUZZ_ITERATIONS ?= 1000000
fuzz:
	FUZZ_ITERATIONS=$(FUZZ_ITERATIONS) cargo test --release --bin telemetry-relay fuzz:: -- --nocapture

# The extension as shipped (static musl release build) under the local Lambda emulator,
# showing what it relays (its stdout) and its own messages. Pass more emulator switches with
# RUN_ARGS, e.g. RUN_ARGS="--lmi".
RUN_ARGS ?=
run: musl-x86
	cargo build --release --target $(X86) --bin telemetry-relay
	cargo build --release --bin lambda-emulator
	./target/release/lambda-emulator --invokes 3 --other-extension \
	  --env TELEMETRY_RELAY_TYPES=platform,function,extension --env TELEMETRY_RELAY_LOG=info \
	  $(RUN_ARGS) $(X86_BIN)

# Static musl binaries for both architectures, zipped as Lambda layers
# (extensions/telemetry-relay, mode 755). The arm64 binary must start and run a full
# emulated lifetime under qemu-aarch64.
layer: musl-x86 musl-arm
	$(call apt,zip,zip)
	cargo build --release --target $(X86) --bin telemetry-relay
	cargo build --release --target $(ARM) --bin telemetry-relay
	cargo build --release --bin lambda-emulator
	@for arch in x86_64 arm64; do \
	  bin=$$([ $$arch = x86_64 ] && echo $(X86_BIN) || echo $(ARM_BIN)); \
	  rm -rf $(LAYER)/$$arch && mkdir -p $(LAYER)/$$arch/extensions && \
	  install -m 755 $$bin $(LAYER)/$$arch/extensions/telemetry-relay && \
	  rm -f $(LAYER)/telemetry-relay-$$arch.zip && \
	  (cd $(LAYER)/$$arch && zip -q -X ../telemetry-relay-$$arch.zip extensions/telemetry-relay) || exit 1; \
	done
	@mkdir -p $(LAYER)/qemu && printf '#!/bin/sh\nexec qemu-aarch64 %s "$$@"\n' "$(CURDIR)/$(ARM_BIN)" > $(LAYER)/qemu/telemetry-relay && chmod 755 $(LAYER)/qemu/telemetry-relay
	./target/release/lambda-emulator --quiet --invokes 2 --json $(LAYER)/qemu/report.json $(LAYER)/qemu/telemetry-relay
	@grep -q '"exit_code": 0' $(LAYER)/qemu/report.json || { echo "arm64 binary failed under qemu-aarch64"; exit 1; }
	@echo "arm64 binary ran a full emulated lifetime under qemu-aarch64"
	@ls -l $(LAYER)/*.zip
	@unzip -Z $(LAYER)/telemetry-relay-x86_64.zip | grep extensions/

# Figures, not a test: see the README's bench section.
BENCH_RUNS ?= 20
SLIM_BIN := target/slim/$(X86)/release/telemetry-relay
bench: layer pydeps
	cargo build --release --target $(X86) --bin baseline-extension
	cargo build --release --target $(X86) --bin telemetry-relay --no-default-features --target-dir target/slim
	cargo build --release --bin relay-bench
	./target/release/relay-bench --runs $(BENCH_RUNS) \
	  --emulator target/release/lambda-emulator \
	  --baseline target/$(X86)/release/baseline-extension \
	  --relay $(X86_BIN) --relay-slim $(SLIM_BIN) \
	  --fixture tests/fixtures/ondemand-warm-invokes.json \
	  --size $(X86_BIN) --size $(SLIM_BIN) --size $(ARM_BIN) --size target/$(X86)/release/baseline-extension \
	  --size $(LAYER)/telemetry-relay-x86_64.zip --size $(LAYER)/telemetry-relay-arm64.zip
	$(MAKE) --no-print-directory bench-encode

# Encoding cost per event and signal, in the release musl build (src/delivery/cost_bench.rs).
bench-encode: musl-x86
	@cargo test --quiet --release --target $(X86) --bin telemetry-relay encoding_cost \
	  -- --ignored --nocapture 2>&1 | sed -n '/^OTLP encoding/,/^| firehose, gzip/p'

# Init Duration, duration and memory with and without the layer, on a real function
# (README, "Measure it on your function"). Without LAYER_ARN or LAYER_ZIP it publishes the zip
# `make layer` built for the function's architecture.
COMPARE_PY := target/compare-init/venv/bin/python
compare-init: compare-init-usage $(if $(LAYER_ARN)$(LAYER_ZIP),,layer)
	@test -x $(COMPARE_PY) || { python3 -m venv target/compare-init/venv && $(COMPARE_PY) -m pip install --quiet --disable-pip-version-check botocore==1.44.8; }
	$(COMPARE_PY) src/compare-init/compare_init.py --function "$(FUNCTION)" \
	  $(if $(LAYER_ARN),--layer-arn "$(LAYER_ARN)",$(if $(LAYER_ZIP),--layer-zip "$(LAYER_ZIP)",--layer-dir $(LAYER))) \
	  --rounds $(or $(ROUNDS),30) $(if $(REGION),--region "$(REGION)") $(if $(filter 1,$(YES)),--yes) \
	  --out target/compare-init

compare-init-usage:
	@test -n "$(FUNCTION)" || { echo "usage: make compare-init FUNCTION=name [LAYER_ARN=arn | LAYER_ZIP=file] [ROUNDS=30] [REGION=region] [YES=1]"; exit 2; }

clean:
	cargo clean
