# The README's commands. Each one installs what it needs first (scripts/bootstrap.sh, idempotent).
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all bootstrap build test demo bench clean

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

clean:
	rm -rf $(BUILD)
