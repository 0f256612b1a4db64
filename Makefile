# The README's commands. Each one installs what it needs first (scripts/bootstrap.sh, idempotent).
BUILD ?= build
JOBS ?= $(shell nproc)

FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60

ASAN_BUILD ?= build-asan

.PHONY: all bootstrap build test sanitize demo bench fuzz clean

all: build

bootstrap:
	bash scripts/bootstrap.sh

$(BUILD)/build.ninja: CMakeLists.txt | bootstrap
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release

build: bootstrap $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	bash scripts/python_test.sh $(BUILD)

# The Python package alone: pip install . into $(BUILD)/venv, then pytest tests/python.
.PHONY: python-test
python-test: build
	bash scripts/python_test.sh $(BUILD)

demo: build
	bash scripts/demo.sh $(BUILD)

bench: build
	bash scripts/bench.sh $(BUILD)

# The whole suite built with clang + AddressSanitizer + UndefinedBehaviorSanitizer (any UB report
# fails its test); the CLI tests then run the sanitized `reformer`. Leaks are not checked: the OpenMP
# runtime keeps its thread pool alive at exit.
sanitize:
	bash scripts/bootstrap.sh fuzz
	CXX=clang++ cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DREFORMER_SANITIZE=ON -DREFORMER_BENCH=OFF
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure -j $(JOBS)

# libFuzzer harnesses (fuzz/README.md), each run for FUZZ_SECONDS; a separate clang build directory.
fuzz:
	bash scripts/bootstrap.sh fuzz
	CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DREFORMER_FUZZ=ON \
	    -DREFORMER_TESTS=OFF -DREFORMER_BENCH=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_safetensors fuzz_config fuzz_trainer_state fuzz_byte_data
	bash scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD)
