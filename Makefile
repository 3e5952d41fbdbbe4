# hotpath - build, test and run.
#
#   make run     install what is missing, build, start hotpathd in the foreground
#   make test    install what is missing, build, run every test, print "N passed, N failed"
#   make fuzz    build the libFuzzer targets and run each briefly
#   make deps    install the Debian packages the build, tests and run need
#   make install DESTDIR=... PREFIX=/usr/local   install binaries, config, unit, man pages
#   make deb / make rpm   build the packages into $(OUT)/ (packaging/README.md)
#   V=1          show full commands
#
# Everything is built into $(OUT): BPF objects and their skeletons, the
# userspace objects (normal, ASan+UBSan, fuzz), binaries and test programs.

OUT        ?= build
CC         := gcc
CLANG      ?= clang
BPFTOOL    ?= $(shell command -v bpftool 2>/dev/null || echo /usr/sbin/bpftool)
ARCH       := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
CONFIG     ?= etc/hotpath.ini

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

.DELETE_ON_ERROR:
.SECONDARY:
.SUFFIXES:

WARN       := -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers
CFLAGS     ?= -O2 -g
ALL_CFLAGS := $(CFLAGS) $(WARN) -std=gnu11 -D_GNU_SOURCE -pthread \
              -Iinclude -I$(OUT) -MMD -MP -fno-omit-frame-pointer
LDLIBS     := -lbpf -lelf -lz -lbrotlienc -lzstd -lxxhash -lmicrohttpd -ljansson -lsystemd -lcrypto -lpg_query -lhiredis -lpq -lpthread -lm
SAN_FLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=undefined
# Release objects and binaries get Debian's usual hardening (the packages ship
# them); sanitizer and fuzz builds do not need it.
HARDEN_CFLAGS  := -D_FORTIFY_SOURCE=2 -fstack-protector-strong
HARDEN_LDFLAGS := -Wl,-z,relro -Wl,-z,now
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Ibpf -Iinclude -Wall -Werror

# Debian packages: build, tests, fuzzing, run.
DEPS_PKGS  := gcc make clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev libbrotli-dev libzstd-dev \
              libmicrohttpd-dev libjansson-dev libcmocka-dev libsystemd-dev \
              libssl-dev libxxhash-dev libhiredis-dev libpg-query-dev libpq-dev libclang-rt-14-dev pkg-config \
              redis-server redis-tools python3 python3-redis python3-pytest python3-psycopg2 python3-psycopg python3-brotli python3-zstandard postgresql postgresql-contrib \
              pgbouncer postgresql-15-hypopg \
              curl valgrind procps iproute2 util-linux nodejs nginx \
              dpkg-dev rpm lintian man-db libcap2-bin

BPF_SRCS   := $(wildcard bpf/*.bpf.c)
BPF_OBJS   := $(patsubst bpf/%.bpf.c,$(OUT)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS      := $(patsubst bpf/%.bpf.c,$(OUT)/%.skel.h,$(BPF_SRCS))

LIB_SRCS   := $(sort $(wildcard agent/*/*.c))
LIB_OBJS   := $(patsubst agent/%.c,$(OUT)/obj/%.o,$(LIB_SRCS))
ASAN_OBJS  := $(patsubst agent/%.c,$(OUT)/asan/%.o,$(LIB_SRCS))
FUZZ_OBJS  := $(patsubst agent/%.c,$(OUT)/fuzzobj/%.o,$(LIB_SRCS))

UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(OUT)/tests/%,$(UNIT_SRCS))
ASAN_BINS  := $(patsubst tests/unit/%.c,$(OUT)/tests-asan/%,$(UNIT_SRCS))
FUZZ_SRCS  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS  := $(patsubst tests/fuzz/%.c,$(OUT)/fuzz/%,$(FUZZ_SRCS))
BENCH_BINS := $(OUT)/cachesim $(OUT)/hookcost $(OUT)/sockloop $(OUT)/discovery $(OUT)/jitdump

.PHONY: all run test unit unit-asan integration fuzz deps clean docs bench-resp check-config
.PHONY: install deb rpm bench-deps bench-http
all: $(OUT)/hotpathd $(OUT)/hotpathctl $(BENCH_BINS)

# ---- BPF: .bpf.c -> .bpf.o -> .skel.h ---------------------------------------
$(OUT)/bpf/%.bpf.o: bpf/%.bpf.c bpf/vmlinux.h $(wildcard bpf/*.bpf.h include/hotpath/*events*.h) | $(OUT)/bpf
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUT)/%.skel.h: $(OUT)/bpf/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@

# ---- userspace ----------------------------------------------------------------
$(OUT)/obj/%.o: agent/%.c | $(SKELS)
	$(call msg,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) $(HARDEN_CFLAGS) -c $< -o $@

$(OUT)/asan/%.o: agent/%.c | $(SKELS)
	$(call msg,CC-ASAN,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -c $< -o $@

$(OUT)/fuzzobj/%.o: agent/%.c | $(SKELS)
	$(call msg,CC-FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(filter-out -MMD -MP,$(ALL_CFLAGS)) -Wno-unused-command-line-argument \
		-fsanitize=fuzzer-no-link,address,undefined -c $< -o $@

$(OUT)/libhotpath.a: $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(OUT)/libhotpath-asan.a: $(ASAN_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(OUT)/libhotpath-fuzz.a: $(FUZZ_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(OUT)/hotpathd: $(OUT)/obj/main.o $(OUT)/libhotpath.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $(HARDEN_LDFLAGS) $^ $(LDLIBS) -o $@

$(OUT)/obj/main.o: agent/main.c | $(SKELS)
	$(call msg,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) $(HARDEN_CFLAGS) -c $< -o $@

$(OUT)/hotpathctl: $(OUT)/obj/hotpathctl.o $(OUT)/libhotpath.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $(HARDEN_LDFLAGS) $^ $(LDLIBS) -o $@

$(OUT)/obj/hotpathctl.o: agent/hotpathctl.c | $(SKELS)
	$(call msg,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) $(HARDEN_CFLAGS) -c $< -o $@

$(OUT)/cachesim: bench/cachesim.c $(OUT)/libhotpath.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@

# bench/overhead.sh's hook-cost arms: kernel hooks with (next to) nothing in them.
$(OUT)/bpf/hookcost.bpf.o: bench/hookcost.bpf.c bpf/vmlinux.h | $(OUT)/bpf
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUT)/hookcost: bench/hookcost.c $(OUT)/hookcost.skel.h
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $< -lbpf -lelf -lz -o $@

$(OUT)/sockloop: bench/sockloop.c
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $< -o $@

$(OUT)/jitdump: bench/jitdump.c
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $< -lbpf -o $@

# one service discovery pass, old way and new (by hand: docs/benchmarks.md)
$(OUT)/discovery: bench/discovery.c $(OUT)/libhotpath.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@

# ---- tests --------------------------------------------------------------------
$(OUT)/tests/%: tests/unit/%.c $(OUT)/libhotpath.a
	$(call msg,LINK,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) $^ -lcmocka -lbrotlidec $(LDLIBS) -o $@

$(OUT)/tests-asan/%: tests/unit/%.c $(OUT)/libhotpath-asan.a
	$(call msg,LINK,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) $^ -lcmocka -lbrotlidec $(LDLIBS) -o $@

$(OUT)/fuzz/%: tests/fuzz/%.c $(OUT)/libhotpath-fuzz.a
	$(call msg,LINK,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(filter-out -MMD -MP,$(ALL_CFLAGS)) -fsanitize=fuzzer,address,undefined $^ $(LDLIBS) -o $@

$(OUT)/bpf:
	@mkdir -p $@

unit: $(UNIT_BINS)
unit-asan: $(ASAN_BINS)

test: deps all $(UNIT_BINS) $(ASAN_BINS)
	@OUT=$(OUT) tests/run.sh

fuzz: deps $(FUZZ_BINS)
	@OUT=$(OUT) tests/fuzz/run.sh

run: deps all
	$(OUT)/hotpathd -c $(CONFIG)

check-config: $(OUT)/hotpathd
	$(OUT)/hotpathd -t -c $(CONFIG)

docs: $(OUT)/hotpathd
	$(OUT)/hotpathd --config-ini > etc/hotpath.ini
	$(OUT)/hotpathd --config-doc > docs/configuration.md
	$(OUT)/hotpathd --config-man > docs/man/hotpath.ini.5

# ---- install and packages (scripts in packaging/, one staged layout) ----------
PREFIX     ?= /usr/local
install: $(OUT)/hotpathd $(OUT)/hotpathctl
	$(Q)OUT=$(OUT) DESTDIR=$(DESTDIR) PREFIX=$(PREFIX) packaging/install.sh

deb: $(OUT)/hotpathd $(OUT)/hotpathctl
	$(Q)OUT=$(OUT) packaging/build-deb.sh

rpm: $(OUT)/hotpathd $(OUT)/hotpathctl
	$(Q)OUT=$(OUT) packaging/build-rpm.sh

bench-resp: all
	bench/resp.sh

# Peers and load generator for bench/http.sh only (not needed by make test).
BENCH_PKGS := nginx libnginx-mod-http-echo varnish wrk
bench-deps:
	@missing=""; for p in $(BENCH_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "  DEPS     installing:$$missing"; \
		SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq >/dev/null && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

bench-http: all bench-deps
	bench/http.sh

# Install missing Debian packages only (quietly); needs root when something is missing.
deps:
	@missing=""; for p in $(DEPS_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "  DEPS     installing:$$missing"; \
		SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq >/dev/null && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null || \
		{ echo "make deps: apt-get install failed for:$$missing" >&2; exit 1; }; \
	fi
	@# the HTTP cache conformance suite (tests/http-cache-tests), pinned by its lock file
	@if [ ! -d tests/http-cache-tests/node_modules/http-cache-tests ]; then \
		command -v npm >/dev/null || { SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
			DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null; }; \
		echo "  DEPS     npm ci in tests/http-cache-tests"; \
		(cd tests/http-cache-tests && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || \
		{ echo "make deps: npm ci failed in tests/http-cache-tests" >&2; exit 1; }; \
	fi

clean:
	rm -rf $(OUT)

-include $(shell find $(OUT) -name '*.d' 2>/dev/null)
