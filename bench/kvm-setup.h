/*
 * kvm-setup.h - what bench/kvm-loop.c and bench/kvm-create.c share: the machine's addresses
 * (tskvm's, src/machine/vm.ts and DESIGN.md), a vCPU's kvm_run page, and real-mode segments.
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

static void die(const char *what)
{
	perror(what);
	exit(1);
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
