# A thin wrapper over meson: every target installs what it lacks first.
#   make build   build/lote and the library (no database, no daemon)
#   make run     the demo: embedded PostgreSQL under .lote/, migrate, daemon
#   make demo-failures  the demo with SMTP deliveries failing: retries,
#                errors, a failed batch and its repair by reprocess
#   make test    the whole suite, plus the sanitizer build (ASan + UBSan)
#   make chaos   the chaos run (slow; not part of make test)
#   make bench   lote bench beside graphile-worker and pg-boss
BUILD ?= build
ASAN ?= build-asan

.PHONY: all build run demo-failures test test-fast chaos bench clean

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

demo-failures:
	@tools/deps.sh run
	@$(MAKE) --no-print-directory build
	LOTE_DEMO_FAILURES=1 tools/run-demo.sh

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

# the chaos run (kill -9 of workers and daemons, PostgreSQL restarts);
# LOTE_CHAOS_SECONDS=60 by default
chaos:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory build
	tests/run.sh $(BUILD) -- --suite chaos

bench:
	@tools/deps.sh bench
	@$(MAKE) --no-print-directory build
	bench/compare.sh

clean:
	rm -rf $(BUILD) $(ASAN)

# docs/images/*.png and *.svg from docs/diagrams/*.dot (Graphviz), committed
# so the docs show them without a build; run after editing a .dot file
.PHONY: diagrams
diagrams:
	@tools/deps.sh diagrams
	@mkdir -p docs/images
	@for f in docs/diagrams/*.dot; do \
		n=docs/images/$$(basename "$$f" .dot); \
		echo "dot $$f -> $$n.png $$n.svg"; \
		dot -Tpng -Gdpi=110 -o "$$n.png" "$$f" && dot -Tsvg -o "$$n.svg" "$$f" || exit 1; \
	done
