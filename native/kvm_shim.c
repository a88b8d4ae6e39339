#define _GNU_SOURCE
#include "kvm_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* kvmtool and QEMU use a real-time signal too: Node and libuv leave these alone. */
#define KICK_SIGNAL_OFFSET 4

int shim_kick_signal(void) { return SIGRTMIN + KICK_SIGNAL_OFFSET; }

int shim_open(const char *path) {
  int fd = open(path, O_RDWR | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

int shim_close(int fd) { return close(fd) < 0 ? -errno : 0; }

long shim_ioctl_int(int fd, unsigned long request, unsigned long arg) {
  long r = ioctl(fd, request, arg);
  return r < 0 ? -errno : r;
}

long shim_ioctl_ptr(int fd, unsigned long request, void *arg) {
  long r = ioctl(fd, request, arg);
  return r < 0 ? -errno : r;
}

int shim_set_user_memory_region(int vm_fd, uint32_t slot, uint32_t flags, uint64_t guest_phys_addr,
                                uint64_t memory_size, uint64_t userspace_addr) {
  struct kvm_userspace_memory_region region = {
      .slot = slot,
      .flags = flags,
      .guest_phys_addr = guest_phys_addr,
      .memory_size = memory_size,
      .userspace_addr = userspace_addr,
  };
  return ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0 ? -errno : 0;
}

int shim_run(int vcpu_fd) { return ioctl(vcpu_fd, KVM_RUN, 0) < 0 ? -errno : 0; }

void *shim_mmap_anonymous(size_t size, int shared, int *err) {
  int flags = (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_NORESERVE;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
  *err = p == MAP_FAILED ? errno : 0;
  return p == MAP_FAILED ? NULL : p;
}

void *shim_mmap_fd(int fd, size_t size, int *err) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  *err = p == MAP_FAILED ? errno : 0;
  return p == MAP_FAILED ? NULL : p;
}

int shim_munmap(void *addr, size_t size) { return munmap(addr, size) < 0 ? -errno : 0; }

int shim_madvise(void *addr, size_t size, int advice) { return madvise(addr, size, advice) < 0 ? -errno : 0; }

static void kick_handler(int sig) { (void)sig; }

int shim_install_kick_handler(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = kick_handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: a blocked KVM_RUN must return -EINTR */
  return sigaction(shim_kick_signal(), &sa, NULL) < 0 ? -errno : 0;
}

uint64_t shim_thread_self(void) { return (uint64_t)pthread_self(); }

int shim_kick(void *kvm_run, uint64_t thread) {
  struct kvm_run *run = kvm_run;
  __atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
  return -pthread_kill((pthread_t)thread, shim_kick_signal());
}

#define IOCTL_NUMBER(name) {#name, name}
const struct shim_ioctl_number shim_ioctl_numbers[] = {
    IOCTL_NUMBER(KVM_GET_API_VERSION),
    IOCTL_NUMBER(KVM_CHECK_EXTENSION),
    IOCTL_NUMBER(KVM_CREATE_VM),
    IOCTL_NUMBER(KVM_GET_VCPU_MMAP_SIZE),
    IOCTL_NUMBER(KVM_SET_TSS_ADDR),
    IOCTL_NUMBER(KVM_SET_IDENTITY_MAP_ADDR),
    IOCTL_NUMBER(KVM_CREATE_VCPU),
    IOCTL_NUMBER(KVM_GET_REGS),
    IOCTL_NUMBER(KVM_SET_REGS),
    IOCTL_NUMBER(KVM_GET_SREGS),
    IOCTL_NUMBER(KVM_SET_SREGS),
    IOCTL_NUMBER(KVM_CREATE_IRQCHIP),
    IOCTL_NUMBER(KVM_CREATE_PIT2),
    IOCTL_NUMBER(KVM_IRQ_LINE),
    IOCTL_NUMBER(KVM_GET_SUPPORTED_CPUID),
    IOCTL_NUMBER(KVM_SET_CPUID2),
    IOCTL_NUMBER(KVM_GET_MSRS),
    IOCTL_NUMBER(KVM_SET_MSRS),
    IOCTL_NUMBER(KVM_GET_MSR_INDEX_LIST),
    IOCTL_NUMBER(KVM_GET_MP_STATE),
    IOCTL_NUMBER(KVM_SET_MP_STATE),
    IOCTL_NUMBER(KVM_GET_IRQCHIP),
    IOCTL_NUMBER(KVM_SET_GSI_ROUTING),
    IOCTL_NUMBER(KVM_SET_GUEST_DEBUG),
    IOCTL_NUMBER(KVM_TRANSLATE),
    {0, 0},
};
