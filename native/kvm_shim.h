/*
 * The C shim: thin wrappers around open/ioctl/mmap/pthread_kill on /dev/kvm and its VM and vCPU
 * fds. Each returns a value or -errno; none holds policy or allocates beyond what the call needs.
 */
#ifndef TSKVM_KVM_SHIM_H
#define TSKVM_KVM_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int shim_open(const char *path);
int shim_close(int fd);
/* An ioctl whose argument is an integer (or nothing): KVM_GET_API_VERSION, KVM_CREATE_VM, ... */
long shim_ioctl_int(int fd, unsigned long request, unsigned long arg);
/* An ioctl whose argument points to a struct the caller owns. */
long shim_ioctl_ptr(int fd, unsigned long request, void *arg);
int shim_set_user_memory_region(int vm_fd, uint32_t slot, uint32_t flags, uint64_t guest_phys_addr,
                                uint64_t memory_size, uint64_t userspace_addr);
/* KVM_RUN: 0, or -errno (-EINTR when kicked). Blocks the calling thread while the guest runs. */
int shim_run(int vcpu_fd);
/*
 * KVM_RUN again and again while the vCPU exits for a port access that no device decodes (its bit
 * set in `unassigned`, one bit per port, 8 KiB): writes are dropped and reads get all ones, as on
 * the PC's ISA bus, without a return to JavaScript. Returns as shim_run does, for the first exit
 * the caller must see; `*handled` grows by the exits it took itself.
 */
#define SHIM_PORT_MAP_BYTES 8192
int shim_run_past_unassigned(int vcpu_fd, void *kvm_run, size_t run_size, const uint8_t *unassigned, double *handled);

/*
 * Anonymous memory for guest RAM, reserved, not committed (MAP_NORESERVE): MAP_SHARED, or
 * MAP_PRIVATE where KSM or transparent huge pages must work (they skip shared mappings).
 */
void *shim_mmap_anonymous(size_t size, int shared, int *err);
/* The vCPU's struct kvm_run page(s). */
void *shim_mmap_fd(int fd, size_t size, int *err);
/*
 * Snapshot restore: maps `size` bytes of the file `fd` from `offset` MAP_PRIVATE|MAP_FIXED over
 * `addr` (inside guest RAM), read-write, copy-on-write. The pages come from the page cache, shared
 * by every guest restored from the same file, until the guest writes one. 0 or -errno.
 */
int shim_mmap_file_fixed(void *addr, size_t size, int fd, int64_t offset);
/* mincore(2): one byte per page of [addr, addr + size), bit 0 set where the page is resident. */
int shim_mincore(void *addr, size_t size, unsigned char *vec);
int shim_munmap(void *addr, size_t size);
/* madvise(2): KSM merging, transparent huge pages, prefaulting guest RAM. */
int shim_madvise(void *addr, size_t size, int advice);

/* Installs the no-op kick signal handler once per process (without SA_RESTART). */
int shim_install_kick_handler(void);
uint64_t shim_thread_self(void);
/* 1 on the process's first thread (Node's main thread: its tid is the pid), 0 elsewhere. */
int shim_is_main_thread(void);
/* isatty(3): 1 when fd is a terminal. */
int shim_isatty(int fd);
/* Kicks a vCPU thread out of KVM_RUN: immediate_exit first, so a kick between runs is not lost. */
int shim_kick(void *kvm_run, uint64_t thread);
int shim_kick_signal(void);

/*
 * A slice timer, for an exit loop on a thread that must come back to its event loop (Node's main
 * thread): a POSIX timer that sends the kick signal to the calling thread, with `kvm_run` as the
 * signal's value so the handler sets its immediate_exit. create: the timer id, or -errno. set:
 * first expiry and period in ns (0, 0 disarms). Delete it before unmapping kvm_run.
 */
long shim_slice_timer_create(void *kvm_run);
int shim_slice_timer_set(long timer, int64_t first_ns, int64_t period_ns);
int shim_slice_timer_delete(long timer);

/*
 * Hands a reference to each of `fds` (at most SHIM_TEARDOWN_MAX_FDS) to a child process that
 * closes them once this process has exited (native/teardown.c), so that the kernel's destruction
 * of a VM does not delay this process's exit. The child's pid, or -errno (nothing was handed over).
 */
#define SHIM_TEARDOWN_MAX_FDS 64
long shim_destroy_after_exit(const int *fds, int count);

/*
 * Reads the regular file `path` whole (at most `max` bytes) into fresh anonymous memory, faulted
 * in by one call (native/file_read.c), `*size` bytes of it; NULL with *err set (ENODATA for an
 * empty file, EFBIG past `max`). shim_free_file releases it.
 */
void *shim_read_file(const char *path, size_t max, size_t *size, int *err);
void shim_free_file(void *data, size_t size);

/*
 * The ioctl request numbers, computed by the C compiler from <linux/kvm.h>: C++ sizes some KVM
 * structs with flexible array members differently, and the size is part of the number.
 */
struct shim_ioctl_number {
  const char *name;
  unsigned long request;
};
extern const struct shim_ioctl_number shim_ioctl_numbers[];

/*
 * Sizes and field offsets of the KVM state structs that snapshots save, computed by the C
 * compiler for the same reason: the TypeScript codecs (src/kvm/state.ts) are tested against them.
 */
struct shim_layout_value {
  const char *name;
  unsigned long value;
};
extern const struct shim_layout_value shim_layout_values[];

#ifdef __cplusplus
}
#endif

#endif
