# bottle — build, test, check, fuzz, bench, install.
# Every library comes through pkg-config. Modules are folders; a new .c file
# in a module is picked up without editing this file.

.DEFAULT_GOAL := all
VERSION := 0.1.0
PREFIX ?= /usr/local
BUILD ?= build
CC ?= cc

PKGS := yaml-0.1 libcjson libidn2 openssl libseccomp sqlite3 libpq libbpf libnl-3.0 libnl-route-3.0 zlib libbrotlidec libbrotlienc ncursesw
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS := $(shell pkg-config --libs $(PKGS))

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral -Wundef
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -DBOTTLE_VERSION=\"$(VERSION)\" -I. -I$(BUILD) $(WARN) \
	-fno-strict-aliasing -fstack-protector-strong -D_FORTIFY_SOURCE=2
OPT ?= -O2 -g
CFLAGS ?=
ALL_CFLAGS = $(BASE_CFLAGS) $(OPT) $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS ?=
LIBS := $(PKG_LIBS) -lpthread

COMMON_SRC := $(wildcard common/*.c)
MANIFEST_SRC := $(wildcard manifest/*.c)
KERNEL_SRC := $(wildcard kernel/*.c)
LEDGER_SRC := $(wildcard ledger/*.c)
BPF_LOADER_SRC := $(filter-out %.bpf.c,$(wildcard bpf/*.c))
RUNTIME_SRC := $(filter-out runtime/main.c,$(wildcard runtime/*.c runtime/*/*.c))
BACKENDS_SRC := $(wildcard backends/*.c backends/*/*.c)
SIDECAR_SRC := $(filter-out sidecar/main.c,$(wildcard sidecar/*.c sidecar/*/*.c))
LIB_SRC := $(COMMON_SRC) $(MANIFEST_SRC) $(KERNEL_SRC) $(LEDGER_SRC) $(BPF_LOADER_SRC) \
	$(RUNTIME_SRC) $(BACKENDS_SRC) $(SIDECAR_SRC)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TEST_HELPER_SRC := $(wildcard tests/helpers/*.c)
TEST_HELPER_BIN := $(TEST_HELPER_SRC:tests/helpers/%.c=$(BUILD)/tests/helpers/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

# BPF objects and skeletons (bpf/*.bpf.c) are generated into $(BUILD)/bpf/.
-include bpf/bpf.mk
# Each BPF loader depends on its own skeleton only (bpf/<name>.c on <name>.skel.h).
$(foreach n,$(BPF_NAMES),$(eval $(BUILD)/bpf/$(n).o: $(BUILD)/bpf/$(n).skel.h))

# Generated headers (BPF skeletons) are kept, never removed as intermediates.
.SECONDARY:

.PHONY: setup all test unit check format format-check lint layers circles asan fuzz bench install clean

all: $(BUILD)/bottle $(BUILD)/bottle-proxy

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libbottle.a: $(LIB_OBJ)
	@rm -f $@
	@echo "  AR $@"
	@ar rcs $@ $^

$(BUILD)/bottle: $(BUILD)/runtime/main.o $(BUILD)/libbottle.a
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/bottle-proxy: $(BUILD)/sidecar/main.o $(BUILD)/libbottle.a
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/testutil.h $(BUILD)/libbottle.a
	@mkdir -p $(dir $@)
	@echo "  TEST $@"
	@$(CC) $(ALL_CFLAGS) $(shell pkg-config --cflags cmocka) -o $@ $< $(BUILD)/libbottle.a \
		$(LIBS) $(shell pkg-config --libs cmocka)

$(BUILD)/tests/helpers/%: tests/helpers/%.c $(BUILD)/libbottle.a
	@mkdir -p $(dir $@)
	@echo "  HELPER $@"
	@$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libbottle.a $(LIBS)

unit: $(UNIT_BIN)

# The whole suite: unit, integration and end-to-end. Ends with one line:
#   tests: N passed, N failed, N skipped
setup:
	@./scripts/setup

test: setup
	@$(MAKE) --no-print-directory all unit $(TEST_HELPER_BIN)
	@BUILD=$(abspath $(BUILD)) sh tests/run.sh

# Sanitizer build (separate build dir): the unit tests and the CLI suite.
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
		-fno-sanitize-recover=undefined -U_FORTIFY_SOURCE" \
		LDFLAGS="-fsanitize=address,undefined" unit all
	@BUILD=$(abspath build-asan) TEST_FILTER=cli sh tests/run.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@out=$$(for f in $$(git ls-files '*.c' '*.h'); do \
		clang-format --dry-run -Werror $$f >/dev/null 2>&1 || echo $$f; done); \
	if [ -n "$$out" ]; then echo "format drift in:"; echo "$$out"; exit 1; fi; \
	echo "format: clean"

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
		--suppress=missingIncludeSystem --suppress=varFuncNullUB --std=c11 -D__linux__ -I. \
		common manifest kernel ledger $(BPF_LOADER_SRC) runtime sidecar backends

# Every project include points down (docs/architecture.md has the table).
layers:
	@sh scripts/layers

# No group of files calls each other in a loop (from the built objects' symbols).
circles: all
	@python3 scripts/circles $(BUILD)

check: format-check lint layers circles asan

FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -I. -I$(BUILD)-fuzz -g -O1 \
	-fsanitize=fuzzer,address,undefined $(PKG_CFLAGS)
fuzz:
	@mkdir -p $(BUILD)-fuzz
	@for f in $(FUZZ_SRC); do \
		n=$$(basename $$f .c); echo "  FUZZ $$n"; \
		clang $(FUZZ_CFLAGS) -o $(BUILD)-fuzz/$$n $$f \
			$(filter-out runtime/main.c sidecar/main.c,$(COMMON_SRC) $(MANIFEST_SRC) $(SIDECAR_SRC) $(LEDGER_SRC)) \
			$(PKG_LIBS) || exit 1; \
	done

bench: all
	@sh bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/bottle/examples/agents \
		$(DESTDIR)$(PREFIX)/share/doc/bottle/examples/bottles
	install -m 0755 $(BUILD)/bottle $(BUILD)/bottle-proxy $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/bottle/
	install -m 0644 examples/agents/*.md $(DESTDIR)$(PREFIX)/share/doc/bottle/examples/agents/
	install -m 0644 examples/bottles/*.md $(DESTDIR)$(PREFIX)/share/doc/bottle/examples/bottles/

clean:
	rm -rf $(BUILD) build-asan $(BUILD)-fuzz

-include $(LIB_OBJ:.o=.d) $(BUILD)/runtime/main.d $(BUILD)/sidecar/main.d
