# A thin wrapper over meson: every target installs what it lacks first.
#   make build   build/lote and the library (no database, no daemon)
#   make run     the demo: embedded PostgreSQL under .lote/, migrate, daemon
#   make test    the whole suite, plus the sanitizer build (ASan + UBSan)
#   make bench   lote bench beside graphile-worker and pg-boss
BUILD ?= build
ASAN ?= build-asan

.PHONY: all build run test test-fast bench clean

all: build

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build:
	@tools/deps.sh build
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD)
	ninja -C $(BUILD)

$(ASAN)/build.ninja:
	meson setup $(ASAN) -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

run:
	@tools/deps.sh run
	@$(MAKE) --no-print-directory build
	tools/run-demo.sh

test:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory build
	@[ -f $(ASAN)/build.ninja ] || meson setup $(ASAN) -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
	ninja -C $(ASAN)
	tests/run.sh $(BUILD) $(ASAN)

# the suite on the normal build only
test-fast:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory build
	tests/run.sh $(BUILD)

bench:
	@tools/deps.sh bench
	@$(MAKE) --no-print-directory build
	bench/run.sh

clean:
	rm -rf $(BUILD) $(ASAN)
