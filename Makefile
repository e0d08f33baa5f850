# Switchyard - one non-recursive make. Each folder adds its own module.mk.
#
# Two builds that never overwrite each other:
#   release   objects in build/rel/,  binaries in bin/            (make, make run, make bench)
#   sanitizer objects in build/asan/, binaries in build/asan/bin/ (make test)
# A change of flags rebuilds: objects depend on a stamp file holding the flags.

VERSION := 0.1.0
ACTOR_DIRS := gateway router balancer healthd statsd chatd apid
CC      ?= gcc
AR      ?= ar

# Warnings are errors (Werror) in every build, release and sanitizer alike.
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
        -Wvla -Wimplicit-fallthrough
# pkg-config runs when a recipe first needs the flags (deferred `=`, cached
# below), never while make reads this file: on a fresh machine `make test`
# installs the packages (scripts/deps.sh) before anything asks pkg-config.
PKGS := libzmq msgpack libcares
# libpq: headers for everyone, linked only by the router (router_LIBS)
PKG_CFLAGS = $(eval PKG_CFLAGS := $$(shell pkg-config --cflags $(PKGS) libpq))$(PKG_CFLAGS)
PKG_LIBS = $(eval PKG_LIBS := $$(shell pkg-config --libs $(PKGS)))$(PKG_LIBS)
CPPFLAGS_ALL = -D_DEFAULT_SOURCE -D_GNU_SOURCE -Iprotocol -Itests/lib $(addprefix -I,$(ACTOR_DIRS) tools demo) -DSWITCHYARD_VERSION='"$(VERSION)"' \
        $(PKG_CFLAGS)
CFLAGS_ALL := -std=gnu11 -g $(WARN)
CFLAGS_REL := $(CFLAGS_ALL) -O2
CFLAGS_ASAN := $(CFLAGS_ALL) -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
        -fno-omit-frame-pointer
LDFLAGS_REL :=
LDFLAGS_ASAN := -fsanitize=address,undefined
LIBS = -lev $(PKG_LIBS) -lm

# Overridable, so that two builds of one tree never race (ASAN=build/mine).
REL  ?= build/rel
ASAN ?= build/asan

# Filled by the module.mk files.
PROTO_SRCS :=
PROGRAMS :=
UNIT_TESTS :=
IT_TESTS :=
SCRIPT_TESTS :=
TEST_LIB_SRCS :=

include protocol/module.mk
include gateway/module.mk
include router/module.mk
include balancer/module.mk
include healthd/module.mk
include statsd/module.mk
include chatd/module.mk
include apid/module.mk
include tools/module.mk
include demo/module.mk
include bench/module.mk
include tests/module.mk
# per-folder test lists (tests/<actor>/module.mk), and the generic rules after them
include $(sort $(wildcard tests/*/module.mk))
$(foreach t,$(IT_TESTS),$(eval $(t)_SRCS += $(TEST_LIB_SRCS)))

ALL_SRCS := $(PROTO_SRCS) $(foreach p,$(PROGRAMS),$($(p)_SRCS)) $(TEST_LIB_SRCS) \
        $(foreach t,$(UNIT_TESTS) $(IT_TESTS),$(t).c) $(PROTO_SPEC_SRCS)

.PHONY: all deps test test-unit test-it spec spec-check format format-check lint clean asan run bench
.DEFAULT_GOAL := all

all: deps
	@$(MAKE) --no-print-directory build-rel

deps:
	@scripts/deps.sh build

.PHONY: build-rel build-asan
build-rel: $(addprefix bin/,$(PROGRAMS))
build-asan: $(addprefix $(ASAN)/bin/,$(PROGRAMS)) $(addprefix $(ASAN)/,$(UNIT_TESTS) $(IT_TESTS)) \
        $(ASAN)/bin/proto_spec

# Flag stamps: rewritten only when the flags change.
$(REL)/.flags: FORCE
	@mkdir -p $(@D)
	@echo '$(CC) $(CPPFLAGS_ALL) $(CFLAGS_REL) $(LDFLAGS_REL)' | cmp -s - $@ \
		|| echo '$(CC) $(CPPFLAGS_ALL) $(CFLAGS_REL) $(LDFLAGS_REL)' > $@
$(ASAN)/.flags: FORCE
	@mkdir -p $(@D)
	@echo '$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ASAN) $(LDFLAGS_ASAN)' | cmp -s - $@ \
		|| echo '$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ASAN) $(LDFLAGS_ASAN)' > $@
FORCE:

# Quiet by default; `make V=1` shows every command.
Q := $(if $(V),,@)

$(REL)/obj/%.o: %.c $(REL)/.flags
	@mkdir -p $(@D)
	@$(if $(V),,echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS_ALL) $(CFLAGS_REL) -MMD -MP -c $< -o $@
$(ASAN)/obj/%.o: %.c $(ASAN)/.flags
	@mkdir -p $(@D)
	@$(if $(V),,echo "  CC asan $<")
	$(Q)$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ASAN) -MMD -MP -c $< -o $@

$(REL)/libproto.a: $(patsubst %.c,$(REL)/obj/%.o,$(PROTO_SRCS))
	$(Q)$(AR) rcs $@ $^
$(ASAN)/libproto.a: $(patsubst %.c,$(ASAN)/obj/%.o,$(PROTO_SRCS))
	$(Q)$(AR) rcs $@ $^

# One link rule per program and build.
define PROGRAM_RULES
bin/$(1): $$(patsubst %.c,$(REL)/obj/%.o,$$($(1)_SRCS)) $(REL)/libproto.a
	@mkdir -p $$(@D)
	@$(if $(V),,echo "  LD      $$@")
	$(Q)$$(CC) $$(LDFLAGS_REL) -o $$@ $$^ $$($(1)_LIBS) $$(LIBS)
$(ASAN)/bin/$(1): $$(patsubst %.c,$(ASAN)/obj/%.o,$$($(1)_SRCS)) $(ASAN)/libproto.a
	@mkdir -p $$(@D)
	@$(if $(V),,echo "  LD asan $$@")
	$(Q)$$(CC) $$(LDFLAGS_ASAN) -o $$@ $$^ $$($(1)_LIBS) $$(LIBS)
endef
$(foreach p,$(PROGRAMS),$(eval $(call PROGRAM_RULES,$(p))))

# Tests are built only with sanitizers.
define TEST_RULES
$(ASAN)/$(1): $(ASAN)/obj/$(1).o $$(patsubst %.c,$(ASAN)/obj/%.o,$$($(1)_SRCS)) $(ASAN)/libproto.a
	@mkdir -p $$(@D)
	@$(if $(V),,echo "  LD asan $$@")
	$(Q)$$(CC) $$(LDFLAGS_ASAN) -o $$@ $$^ $$($(1)_LIBS) -lcmocka $$(LIBS)
endef
$(foreach t,$(UNIT_TESTS) $(IT_TESTS),$(eval $(call TEST_RULES,$(t))))

$(ASAN)/bin/proto_spec: $(patsubst %.c,$(ASAN)/obj/%.o,$(PROTO_SPEC_SRCS)) $(ASAN)/libproto.a
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ASAN) -o $@ $^ $(LIBS)

test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory build-asan
	@# the release build too (make run, make bench): -O2 finds warnings -O1 does not
	@$(MAKE) --no-print-directory build-rel
	@$(MAKE) --no-print-directory spec-check lint format-check
	@SWITCHYARD_BIN_DIR=$(CURDIR)/$(ASAN)/bin tests/run.sh $(addprefix $(ASAN)/,$(UNIT_TESTS)) $(SCRIPT_TESTS) -- $(addprefix $(ASAN)/,$(IT_TESTS)) \
		$(if $(wildcard tests/e2e/run.sh),-- tests/e2e/run.sh)

# The whole stack in the foreground with the demo (SPEC §1); Ctrl-C stops it.
run:
	@scripts/deps.sh run
	@$(MAKE) --no-print-directory build-rel
	@exec bin/switchyard run

# Side by side with nginx and HAProxy (SPEC §12); writes docs/performance.md.
bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory build-rel
	@bench/bench.sh

test-unit: build-asan
	@tests/run.sh $(addprefix $(ASAN)/,$(UNIT_TESTS))

test-it: build-asan
	@tests/run.sh -- $(addprefix $(ASAN)/,$(IT_TESTS))

# protocol/PROTOCOL.md's message table is generated from messages.def.
spec: $(ASAN)/bin/proto_spec
	@scripts/spec.sh update $(ASAN)/bin/proto_spec protocol/PROTOCOL.md

spec-check: $(ASAN)/bin/proto_spec
	@scripts/spec.sh check $(ASAN)/bin/proto_spec protocol/PROTOCOL.md

FORMAT_FILES = $(sort $(filter %.c %.h,$(ALL_SRCS) $(wildcard */*.h protocol/*.h tests/*/*.h)))

format:
	@clang-format -i $(FORMAT_FILES)

format-check:
	@clang-format --dry-run -Werror $(FORMAT_FILES) && echo "format-check: ok"

lint:
	@if grep -nE '\b(strcpy|strcat|sprintf|gets|strtok|atoi)\s*\(' $(FORMAT_FILES); then \
		echo "lint: forbidden call (use snprintf, strtok_r, strtol, proto_strlcpy)"; exit 1; \
	else echo "lint: ok"; fi

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)

# libFuzzer targets (tests/fuzz/README.md): each tests/fuzz/fuzz_<name>.c is built with clang into
# build/fuzz/ (sources per target in tests/fuzz/module.mk) and run FUZZ_SECONDS over
# build/fuzz/corpus/<name>/, which starts as a copy of tests/fuzz/corpus/<name>/ and keeps what
# the fuzzer finds (the repository's seeds stay as they are). A crash or a hang fails the target.
FUZZ_SECONDS ?= 30
FUZZ_DIR := build/fuzz
FUZZ_CC := clang
FUZZ_CFLAGS := -std=gnu11 -g -O1 -D_DEFAULT_SOURCE -D_GNU_SOURCE $(WARN) \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iprotocol -Igateway -Iapid \
        -Ihealthd -Ichatd
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

.PHONY: fuzz fuzz-build
fuzz:
	@scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@for n in $(FUZZ_NAMES); do \
		corpus=$(FUZZ_DIR)/corpus/$$n; log=$(FUZZ_DIR)/fuzz_$$n.log; dict=; \
		mkdir -p $$corpus; \
		if [ -d tests/fuzz/corpus/$$n ]; then cp tests/fuzz/corpus/$$n/* $$corpus/; fi; \
		if [ -f tests/fuzz/$$n.dict ]; then dict=-dict=tests/fuzz/$$n.dict; fi; \
		if ls tests/fuzz/regress/$$n-* >/dev/null 2>&1; then \
			echo "  FUZZ    fuzz_$$n on its regression inputs"; \
			$(FUZZ_DIR)/fuzz_$$n tests/fuzz/regress/$$n-* >$$log 2>&1 \
				|| { tail -n 30 $$log; echo "fuzz: fuzz_$$n fails on a regression input"; exit 1; }; \
		fi; \
		echo "  FUZZ    fuzz_$$n for $(FUZZ_SECONDS) s (log $$log)"; \
		if ! $(FUZZ_DIR)/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_DIR)/$$n- $$dict $$corpus >$$log 2>&1; then \
			tail -n 30 $$log; \
			echo "fuzz: fuzz_$$n failed; the input is $(FUZZ_DIR)/$$n-crash-* (or timeout-*)"; exit 1; \
		fi; \
		echo "  fuzz_$$n: $$(sed -n 's/^stat::number_of_executed_units: *//p' $$log) runs, corpus $$(ls $$corpus | wc -l) inputs, no crash"; \
	done

fuzz-build: $(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_NAMES))

define FUZZ_RULES
$(FUZZ_DIR)/fuzz_$(1): tests/fuzz/fuzz_$(1).c $$(FUZZ_$(1)_SRCS) \
        $$(wildcard gateway/*.h protocol/*.h apid/*.h healthd/*.h chatd/*.h tests/fuzz/*.h)
	@mkdir -p $$(@D)
	@$(if $(V),,echo "  FUZZ CC $$@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $$@ $$(filter %.c,$$^) $$(FUZZ_$(1)_LIBS)
endef
$(foreach n,$(FUZZ_NAMES),$(eval $(call FUZZ_RULES,$(n))))
