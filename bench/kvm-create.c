/*
 * kvm-create.c - the C reference for in-process create-run-destroy (bench/create-stages.mjs):
 * what the kernel alone charges for one PC-shaped VM, built, run to its first exit and torn
 * down, as tskvm's builder does it (src/machine/vm.ts, builder.ts), with no device model.
 *
 *   kvm-create IMAGE RUNS [MEMORY_BYTES]
 *
 * Each run: /dev/kvm opened, KVM_CREATE_VM, KVM_SET_TSS_ADDR, KVM_SET_IDENTITY_MAP_ADDR, RAM
 * (mmap) as slot 0, KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2, vCPU 0 with the host's supported CPUID
 * (asked once, as tskvm asks once per process), kvm_run mapped, the flat image copied to 0x10000
 * and started in real mode at 1000:0000; KVM_RUN until the first exit, which must be an OUT to
 * the debug-exit port 0xF4. (tskvm also sets its GSI routing and boot MSRs: ~0.05 ms more.)
 * Then everything is closed, the VM fd in a thread of its own: the
 * kernel takes milliseconds to destroy a VM with an irqchip, and tskvm too leaves that to
 * another thread (src/kvm/background-close.ts).
 *
 * Prints one line: runs=<N> median_ms=<M> min_ms=<m>, each run from /dev/kvm's open to the VM
 * fd handed to its closing thread. Exit status 0, or 1 with a message on stderr.
 *
 * Build: gcc -O2 -Wall -pthread -o bench/build/kvm-create bench/kvm-create.c
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kvm-setup.h"

#define IDENTITY_MAP_ADDR 0xfffbc000ull
#define MAX_IMAGE (64u << 10)
#define MAX_RUNS 100000

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void *close_fd(void *arg)
{
	close((int)(intptr_t)arg);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static struct kvm_cpuid2 *cpuid;

static void one_run(const uint8_t *image, size_t image_size, size_t mem_size)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("/dev/kvm");
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");
	uint64_t identity = IDENTITY_MAP_ADDR;
	if (ioctl(vm, KVM_SET_TSS_ADDR, TSS_ADDR) < 0 || ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0)
		die("KVM_SET_TSS_ADDR");
	uint8_t *mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap guest memory");
	struct kvm_userspace_memory_region region = { .slot = 0, .memory_size = mem_size, .userspace_addr = (uintptr_t)mem };
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		die("KVM_SET_USER_MEMORY_REGION");
	create_pc_irqchip(vm);
	memcpy(mem + FLAT_LOAD_ADDR, image, image_size);

	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		die("KVM_CREATE_VCPU");
	if (ioctl(vcpu, KVM_SET_CPUID2, cpuid) < 0)
		die("KVM_SET_CPUID2");
	size_t run_size;
	struct kvm_run *run = map_run(kvm, vcpu, &run_size);
	set_real_mode_segments(vcpu, FLAT_SEGMENT);
	struct kvm_regs regs = { .rflags = 0x2, .rsp = FLAT_SP, .rbp = FLAT_SP };
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		die("KVM_SET_REGS");

	if (ioctl(vcpu, KVM_RUN, 0) < 0)
		die("KVM_RUN");
	if (run->exit_reason != KVM_EXIT_IO || run->io.port != DEBUG_EXIT_PORT) {
		fprintf(stderr, "kvm-create: the first exit was reason %u, not an OUT to 0xF4\n", run->exit_reason);
		exit(1);
	}

	munmap(run, run_size);
	close(vcpu);
	munmap(mem, mem_size);
	close(kvm);
	pthread_t closer;
	if (pthread_create(&closer, NULL, close_fd, (void *)(intptr_t)vm) != 0)
		die("pthread_create");
	pthread_detach(closer);
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: %s IMAGE RUNS [MEMORY_BYTES]\n", argv[0]);
		return 1;
	}
	int runs = atoi(argv[2]);
	if (runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "kvm-create: RUNS must be 1 to %d\n", MAX_RUNS);
		return 1;
	}
	size_t mem_size = argc == 4 ? (size_t)strtoull(argv[3], NULL, 0) : DEFAULT_MEMORY;
	if (mem_size < 0x20000 || (mem_size & 0xfff)) {
		fprintf(stderr, "kvm-create: MEMORY_BYTES must be a multiple of 4096, at least 128 KiB\n");
		return 1;
	}
	static uint8_t image[MAX_IMAGE];
	int img = open(argv[1], O_RDONLY);
	if (img < 0)
		die(argv[1]);
	ssize_t image_size = read(img, image, sizeof(image));
	if (image_size <= 0)
		die("read image");
	if ((size_t)image_size == sizeof(image)) {
		fprintf(stderr, "kvm-create: %s: a flat image of at most %u bytes\n", argv[1], MAX_IMAGE - 1);
		return 1;
	}
	close(img);

	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("/dev/kvm");
	cpuid = host_cpuid(kvm);
	close(kvm);

	double *ms = calloc((size_t)runs, sizeof(double));
	if (!ms)
		die("calloc");
	for (int i = 0; i < runs; i++) {
		double t0 = now_ms();
		one_run(image, (size_t)image_size, mem_size);
		ms[i] = now_ms() - t0;
	}
	qsort(ms, (size_t)runs, sizeof(double), cmp_double);
	printf("runs=%d median_ms=%.3f min_ms=%.3f\n", runs, ms[runs / 2], ms[0]);
	return 0;
}
