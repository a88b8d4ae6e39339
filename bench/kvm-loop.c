/*
 * kvm-loop.c - the smallest useful KVM exit loop: the reference point for tskvm's benchmarks and a
 * way to check the guests in guests/ on real KVM without the TypeScript side.
 *
 *   kvm-loop [--irqchip] IMAGE [MEMORY_BYTES]
 *
 * --irqchip sets the VM up as tskvm's builder does (src/machine/vm.ts), to tell the VM's share of
 * an exit from tskvm's: KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2 (dummy speaker) before the vCPU,
 * and the host's KVM_GET_SUPPORTED_CPUID on it (tskvm filters it; its GSI routes and boot MSRs are
 * left out). HLT then no longer exits: the vCPU sleeps in the kernel, as under tskvm.
 *
 * Machine (the tskvm contract, /work/shared/DESIGN.md): one RAM slot from guest-physical 0
 * (default 16 MiB). A flat image is loaded at 0x10000 and starts in real mode with
 * CS=DS=ES=FS=GS=SS=0x1000, IP=0, SP=BP=0x8000, RFLAGS=0x2. A 512-byte image ending 0x55 0xAA is a
 * boot sector: loaded at 0x7C00, CS:IP=0000:7C00, DL=0x80, SS:SP=0000:7C00 (other segments 0).
 *
 * Devices, decoded per exit and nothing more:
 *   OUT 0x3F8 (COM1 THR)     the byte(s) go to stdout (string I/O: size*count bytes)
 *   IN  0x3FD (COM1 LSR)     0x60 (THRE|TEMT): always ready to send; | 0x01 (DR) when a byte of
 *                            stdin is waiting (a non-blocking poll(), only while stdin is open)
 *   IN  0x3F8 (COM1 RBR)     that byte (then DR clears)
 *   OUT 0xF4  (debug exit)   the run ends; code = the value written (1, 2 or 4 bytes)
 *   OUT 0xFE to 0x64         the run ends: reset
 *   other IN                 all ones; other OUT: ignored
 *   MMIO                     reads all ones, writes ignored
 *   HLT                      the run ends: halt (without --irqchip, nothing could wake it; with
 *                            it, HLT does not exit: use guests that end by a port write)
 *   SHUTDOWN                 the run ends: shutdown (triple fault)
 *   INTERNAL_ERROR           the run ends: internal-error-<suberror> (1 = emulation failure)
 *   anything else            the run ends: exit-<reason number>
 *
 * At the end, one line on stderr:
 *   exits=<N> seconds=<S> exits_per_sec=<R> reason=<...> code=<...>
 * Exit status: debug-exit value & 0xFF; 0 for halt and reset; 125 for shutdown or any other exit
 * (like tskvm's "crash"); 1 for set-up errors.
 *
 * Build: mkdir -p bench/build && gcc -O2 -Wall -o bench/build/kvm-loop bench/kvm-loop.c
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kvm-setup.h"

#define BOOT_LOAD_ADDR 0x7c00
#define BOOT_SECTOR_SIZE 512
#define BOOT_DRIVE 0x80

#define COM1_THR 0x3f8
#define COM1_RBR 0x3f8
#define COM1_LSR 0x3fd
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define I8042_CMD_PORT 0x64
#define I8042_CMD_RESET 0xfe

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* stdout closed: the guest does not care */
		}
		p += w;
		n -= (size_t)w;
	}
}

/* Serial input: one byte of lookahead from stdin, fetched without blocking when the guest polls LSR. */
static int rx_byte = -1;
static int stdin_open = 1;

static uint8_t serial_lsr(void)
{
	if (rx_byte < 0 && stdin_open) {
		struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
		if (poll(&p, 1, 0) > 0) {
			uint8_t b;
			ssize_t r = read(STDIN_FILENO, &b, 1);
			if (r == 1)
				rx_byte = b;
			else if (r == 0 || (errno != EINTR && errno != EAGAIN))
				stdin_open = 0; /* EOF: the guest just never sees more input */
		}
	}
	return LSR_THRE | LSR_TEMT | (rx_byte >= 0 ? LSR_DR : 0);
}

static uint8_t serial_rbr(void)
{
	uint8_t b = rx_byte >= 0 ? (uint8_t)rx_byte : 0;
	rx_byte = -1;
	return b;
}

int main(int argc, char **argv)
{
	int irqchip = argc > 1 && strcmp(argv[1], "--irqchip") == 0;
	if (irqchip) {
		argv[1] = argv[0];
		argv++;
		argc--;
	}
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: %s [--irqchip] IMAGE [MEMORY_BYTES]\n", argv[0]);
		return 2;
	}
	size_t mem_size = DEFAULT_MEMORY;
	if (argc == 3) {
		char *end;
		unsigned long long v = strtoull(argv[2], &end, 0);
		if (*end || v < 0x20000 || (v & 0xfff)) {
			fprintf(stderr, "kvm-loop: bad MEMORY_BYTES %s (a multiple of 4096, at least 128 KiB)\n", argv[2]);
			return 2;
		}
		mem_size = (size_t)v;
	}

	/* The image. */
	int img = open(argv[1], O_RDONLY);
	if (img < 0)
		die(argv[1]);
	struct stat st;
	if (fstat(img, &st) < 0)
		die("fstat");

	/* The VM and its memory. */
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("/dev/kvm");
	if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		fprintf(stderr, "kvm-loop: KVM API version mismatch\n");
		return 1;
	}
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");
	if (ioctl(vm, KVM_SET_TSS_ADDR, TSS_ADDR) < 0)
		die("KVM_SET_TSS_ADDR");
	uint8_t *mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap guest memory");
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = mem_size,
		.userspace_addr = (uintptr_t)mem,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		die("KVM_SET_USER_MEMORY_REGION");

	/* Load: a 512-byte image ending 0x55AA is a boot sector, anything else a flat binary. */
	if (st.st_size <= 0 || (size_t)st.st_size > mem_size - FLAT_LOAD_ADDR) {
		fprintf(stderr, "kvm-loop: %s: image is empty or does not fit in memory\n", argv[1]);
		return 2;
	}
	uint8_t *image = mem + FLAT_LOAD_ADDR;
	ssize_t n = read(img, image, (size_t)st.st_size);
	if (n != st.st_size)
		die("read image");
	close(img);
	int boot_sector = n == BOOT_SECTOR_SIZE && image[510] == 0x55 && image[511] == 0xaa;
	if (boot_sector) {
		memcpy(mem + BOOT_LOAD_ADDR, image, BOOT_SECTOR_SIZE);
		memset(image, 0, BOOT_SECTOR_SIZE);
	}

	if (irqchip)
		create_pc_irqchip(vm);

	/* vCPU 0 and its kvm_run page. */
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		die("KVM_CREATE_VCPU");
	if (irqchip && ioctl(vcpu, KVM_SET_CPUID2, host_cpuid(kvm)) < 0)
		die("KVM_SET_CPUID2");
	size_t run_size;
	struct kvm_run *run = map_run(kvm, vcpu, &run_size);

	/* Registers: real mode (KVM's reset state), segment base = selector << 4. */
	set_real_mode_segments(vcpu, boot_sector ? 0 : FLAT_SEGMENT);
	struct kvm_regs regs = { .rflags = 0x2 };
	if (boot_sector) {
		regs.rip = BOOT_LOAD_ADDR;
		regs.rsp = BOOT_LOAD_ADDR;
		regs.rdx = BOOT_DRIVE;
	} else {
		regs.rip = 0;
		regs.rsp = FLAT_SP;
		regs.rbp = FLAT_SP;
	}
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		die("KVM_SET_REGS");

	/* The exit loop. */
	unsigned long long exits = 0;
	const char *reason = NULL;
	char reason_buf[32];
	uint32_t code = 0;
	int status = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!reason) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			die("KVM_RUN");
		}
		exits++;
		switch (run->exit_reason) {
		case KVM_EXIT_IO: {
			uint8_t *data = (uint8_t *)run + run->io.data_offset;
			size_t len = (size_t)run->io.size * run->io.count;
			uint16_t port = run->io.port;
			if (run->io.direction == KVM_EXIT_IO_OUT) {
				if (port == COM1_THR) {
					write_all(STDOUT_FILENO, data, len);
				} else if (port == DEBUG_EXIT_PORT) {
					code = run->io.size == 1 ? data[0]
					     : run->io.size == 2 ? *(uint16_t *)data
								 : *(uint32_t *)data;
					reason = "debug-exit";
					status = code & 0xff;
				} else if (port == I8042_CMD_PORT && data[0] == I8042_CMD_RESET) {
					reason = "reset";
				}
			} else {
				for (size_t i = 0; i < len; i++)
					data[i] = port == COM1_LSR ? serial_lsr()
						: port == COM1_RBR ? serial_rbr() : 0xff;
			}
			break;
		}
		case KVM_EXIT_MMIO:
			if (!run->mmio.is_write)
				memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
			break;
		case KVM_EXIT_HLT:
			reason = "halt";
			break;
		case KVM_EXIT_SHUTDOWN:
			reason = "shutdown";
			status = 125;
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			snprintf(reason_buf, sizeof(reason_buf), "internal-error-%u", run->internal.suberror);
			reason = reason_buf;
			status = 125;
			break;
		default:
			snprintf(reason_buf, sizeof(reason_buf), "exit-%u", run->exit_reason);
			reason = reason_buf;
			status = 125;
			break;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(stderr, "exits=%llu seconds=%.6f exits_per_sec=%.0f reason=%s code=%u\n",
		exits, seconds, seconds > 0 ? (double)exits / seconds : 0.0, reason, code);
	return status;
}
