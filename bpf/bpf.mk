# BPF programs: bpf/<name>.bpf.c -> $(BUILD)/bpf/<name>.bpf.o -> $(BUILD)/bpf/<name>.skel.h
# Included by the top Makefile. Only pattern rules here, so the default goal
# stays the top Makefile's `all`.
#
# policy.bpf.c is built against the UAPI headers (no CO-RE relocations, fast
# load); sockkill.bpf.c reads struct sock and needs a vmlinux.h generated
# from the running kernel's BTF.

BPF_CLANG ?= clang
BPFTOOL ?= bpftool
BPF_ARCH_INC := /usr/include/$(shell $(CC) -print-multiarch 2>/dev/null)
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Werror -Ibpf -idirafter $(BPF_ARCH_INC)
BPF_SRC := $(wildcard bpf/*.bpf.c)
BPF_NAMES := $(BPF_SRC:bpf/%.bpf.c=%)
BPF_SKELS := $(BPF_NAMES:%=$(BUILD)/bpf/%.skel.h)
BPF_VMLINUX := $(BUILD)/bpf/vmlinux.h

# Kernel types for the CO-RE programs (only sockkill includes it).
%/bpf/vmlinux.h:
	@mkdir -p $(dir $@)
	@echo "  BTF $@"
	@$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/bpf/%.tmp.o: bpf/%.bpf.c bpf/bottle_abi.h
	@mkdir -p $(dir $@)
	@echo "  BPF $<"
	@$(BPF_CLANG) $(BPF_CFLAGS) -I$(BUILD)/bpf -c $< -o $@

$(BUILD)/bpf/sockkill.tmp.o: $(BPF_VMLINUX)

# BTF dedup/link (bpftool gen object) before the skeleton: much smaller CO-RE
# objects. Both steps in one rule: a separate `%.bpf.o` target would compete
# with the top Makefile's `$(BUILD)/%.o: %.c` rule.
$(BUILD)/bpf/%.skel.h: $(BUILD)/bpf/%.tmp.o
	@echo "  SKEL $@"
	@$(BPFTOOL) gen object $(BUILD)/bpf/$*.bpf.o $<
	@$(BPFTOOL) gen skeleton $(BUILD)/bpf/$*.bpf.o name $*_bpf > $@.tmp && mv $@.tmp $@

.PRECIOUS: $(BUILD)/bpf/%.tmp.o $(BPF_VMLINUX)
