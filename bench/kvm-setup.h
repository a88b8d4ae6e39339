/*
 * kvm-setup.h - what bench/kvm-loop.c and bench/kvm-create.c share: the machine's addresses
 * (tskvm's, src/machine/vm.ts and DESIGN.md), the PC's in-kernel interrupt controllers and PIT,
 * the host's CPUID, a vCPU's kvm_run page, and real-mode segments.
 * Static functions in a header: each program is still one gcc call (bench/c-loop.mjs).
 */
#ifndef TSKVM_BENCH_KVM_SETUP_H
#define TSKVM_BENCH_KVM_SETUP_H

#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#define DEFAULT_MEMORY (16u << 20) /* tskvm's default RAM (src/machine/options.ts) */
#define TSS_ADDR 0xfffbd000ul
#define FLAT_LOAD_ADDR 0x10000
#define FLAT_SEGMENT 0x1000
#define FLAT_SP 0x8000
#define DEBUG_EXIT_PORT 0xf4
/* Room for the host's CPUID leaves (KVM_GET_SUPPORTED_CPUID fails with E2BIG on too few). */
#define MAX_CPUID_ENTRIES 256

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2 (dummy speaker), as tskvm's builder makes them. */
static void create_pc_irqchip(int vm)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0)
		die("KVM_CREATE_IRQCHIP");
	if (ioctl(vm, KVM_CREATE_PIT2, &pit) < 0)
		die("KVM_CREATE_PIT2");
}

/* KVM_GET_SUPPORTED_CPUID's answer, unfiltered, allocated for the program's lifetime. */
static struct kvm_cpuid2 *host_cpuid(int kvm)
{
	struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + MAX_CPUID_ENTRIES * sizeof(struct kvm_cpuid_entry2));
	if (!cpuid)
		die("calloc");
	cpuid->nent = MAX_CPUID_ENTRIES;
	if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid) < 0)
		die("KVM_GET_SUPPORTED_CPUID");
	return cpuid;
}

/* vCPU `vcpu`'s kvm_run page, mapped; its size in *size. */
static struct kvm_run *map_run(int kvm, int vcpu, size_t *size)
{
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size < 0)
		die("KVM_GET_VCPU_MMAP_SIZE");
	struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		die("mmap kvm_run");
	*size = (size_t)run_size;
	return run;
}

/* Real mode (KVM's reset state) with every segment register at `selector`, base = selector << 4. */
static void set_real_mode_segments(int vcpu, uint16_t selector)
{
	struct kvm_sregs sregs;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		die("KVM_GET_SREGS");
	struct kvm_segment *segments[] = { &sregs.cs, &sregs.ds, &sregs.es, &sregs.fs, &sregs.gs, &sregs.ss };
	for (size_t i = 0; i < sizeof segments / sizeof segments[0]; i++) {
		segments[i]->selector = selector;
		segments[i]->base = (uint64_t)selector << 4;
	}
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		die("KVM_SET_SREGS");
}

#endif
