# The two commands a newcomer runs (README.md): `make run` and `make test`.
# Both install what is missing (scripts/install-deps.sh), build, then run.

BUILD      ?= build
TEST_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
MESON_SETUP = meson setup --wrap-mode=nodownload

.PHONY: all deps build run test fuzz bench install clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	$(MESON_SETUP) $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# The main job: see scripts/run-demo.sh.
run: build
	@scripts/run-demo.sh $(BUILD)/src/cli/sockstack

$(TEST_BUILD)/build.ninja: | deps
	$(MESON_SETUP) $(TEST_BUILD) -Db_sanitize=address,undefined -Db_lundef=false

# Every test under AddressSanitizer + UndefinedBehaviorSanitizer, then a
# short run of each libFuzzer target (clang build).
test: deps $(TEST_BUILD)/build.ninja $(FUZZ_BUILD)/build.ninja
	ninja -C $(TEST_BUILD)
	ninja -C $(FUZZ_BUILD)
	@scripts/run-tests.sh $(TEST_BUILD) $(FUZZ_BUILD)

$(FUZZ_BUILD)/build.ninja: | deps
	CC=clang $(MESON_SETUP) $(FUZZ_BUILD) -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false

# Longer fuzzing runs (make test runs each target briefly): each target
# FUZZ_SECONDS, except fuzz-stack, which runs to FUZZ_STACK_RUNS executions
# (at most FUZZ_STACK_SECONDS).
FUZZ_SECONDS ?= 300
FUZZ_STACK_RUNS ?= 10000000
FUZZ_STACK_SECONDS ?= 10800
fuzz: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)
	@FUZZ_STACK_RUNS=$(FUZZ_STACK_RUNS) FUZZ_STACK_SECONDS=$(FUZZ_STACK_SECONDS) \
	    scripts/run-fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

bench: build
	@for b in bench/*/run bench/stack/speed; do echo "== $$b"; $$b $(BUILD) || exit 1; done

install: build
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(FUZZ_BUILD)
