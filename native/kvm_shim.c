#define _GNU_SOURCE
#include "kvm_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
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

int shim_run_past_unassigned(int vcpu_fd, void *kvm_run, size_t run_size, const uint8_t *unassigned, double *handled) {
  struct kvm_run *run = kvm_run;
  for (;;) {
    if (ioctl(vcpu_fd, KVM_RUN, 0) < 0) return -errno;
    if (run->exit_reason != KVM_EXIT_IO) return 0;
    unsigned int port = run->io.port;
    if ((unassigned[port >> 3] & (1u << (port & 7))) == 0) return 0;
    if (run->io.direction == KVM_EXIT_IO_IN) {
      /* Nothing drives the bus: every byte reads as ones. Data outside the page is left to the
       * caller, which clamps it. */
      uint64_t length = (uint64_t)run->io.size * run->io.count;
      if (run->io.data_offset > run_size || length > run_size - run->io.data_offset) return 0;
      memset((char *)kvm_run + run->io.data_offset, 0xff, (size_t)length);
    }
    *handled += 1;
  }
}

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

int shim_mmap_file_fixed(void *addr, size_t size, int fd, int64_t offset) {
  void *p = mmap(addr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, (off_t)offset);
  return p == MAP_FAILED ? -errno : 0;
}

int shim_mincore(void *addr, size_t size, unsigned char *vec) { return mincore(addr, size, vec) < 0 ? -errno : 0; }

int shim_munmap(void *addr, size_t size) { return munmap(addr, size) < 0 ? -errno : 0; }

int shim_madvise(void *addr, size_t size, int advice) { return madvise(addr, size, advice) < 0 ? -errno : 0; }

/*
 * The kick signal interrupts KVM_RUN; the handler itself does nothing for a kick (shim_kick set
 * immediate_exit before signalling). A slice timer's tick carries its vCPU's kvm_run as the
 * signal's value and sets immediate_exit there: a tick that lands between two KVM_RUNs, while the
 * thread runs JavaScript, still ends the next one (kvmtool and QEMU do the same in their handlers).
 */
static void kick_handler(int sig, siginfo_t *info, void *context) {
  (void)sig;
  (void)context;
  if (info != NULL && info->si_code == SI_TIMER && info->si_value.sival_ptr != NULL) {
    struct kvm_run *run = info->si_value.sival_ptr;
    __atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
  }
}

int shim_install_kick_handler(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = kick_handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_SIGINFO; /* no SA_RESTART: a blocked KVM_RUN must return -EINTR */
  return sigaction(shim_kick_signal(), &sa, NULL) < 0 ? -errno : 0;
}

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

long shim_slice_timer_create(void *kvm_run) {
  struct sigevent sev;
  timer_t timer;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = shim_kick_signal();
  sev.sigev_value.sival_ptr = kvm_run;
  sev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
  if (timer_create(CLOCK_MONOTONIC, &sev, &timer) < 0) return -errno;
  /* glibc's timer_t is the kernel's timer id, a small integer, in a pointer. */
  return (long)(intptr_t)timer;
}

int shim_slice_timer_set(long timer, int64_t first_ns, int64_t period_ns) {
  struct itimerspec spec = {
      .it_value = {.tv_sec = first_ns / 1000000000, .tv_nsec = first_ns % 1000000000},
      .it_interval = {.tv_sec = period_ns / 1000000000, .tv_nsec = period_ns % 1000000000},
  };
  return timer_settime((timer_t)(intptr_t)timer, 0, &spec, NULL) < 0 ? -errno : 0;
}

int shim_slice_timer_delete(long timer) { return timer_delete((timer_t)(intptr_t)timer) < 0 ? -errno : 0; }

uint64_t shim_thread_self(void) { return (uint64_t)pthread_self(); }

int shim_is_main_thread(void) { return syscall(SYS_gettid) == getpid(); }

int shim_isatty(int fd) { return isatty(fd); }

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
    /* Snapshots: per vCPU. */
    IOCTL_NUMBER(KVM_GET_CPUID2),
    IOCTL_NUMBER(KVM_GET_FPU),
    IOCTL_NUMBER(KVM_SET_FPU),
    IOCTL_NUMBER(KVM_GET_XSAVE),
    IOCTL_NUMBER(KVM_GET_XSAVE2),
    IOCTL_NUMBER(KVM_SET_XSAVE),
    IOCTL_NUMBER(KVM_GET_XCRS),
    IOCTL_NUMBER(KVM_SET_XCRS),
    IOCTL_NUMBER(KVM_GET_LAPIC),
    IOCTL_NUMBER(KVM_SET_LAPIC),
    IOCTL_NUMBER(KVM_GET_VCPU_EVENTS),
    IOCTL_NUMBER(KVM_SET_VCPU_EVENTS),
    IOCTL_NUMBER(KVM_GET_DEBUGREGS),
    IOCTL_NUMBER(KVM_SET_DEBUGREGS),
    IOCTL_NUMBER(KVM_GET_TSC_KHZ),
    IOCTL_NUMBER(KVM_SET_TSC_KHZ),
    /* Snapshots: per VM. */
    IOCTL_NUMBER(KVM_SET_IRQCHIP),
    IOCTL_NUMBER(KVM_GET_PIT2),
    IOCTL_NUMBER(KVM_SET_PIT2),
    IOCTL_NUMBER(KVM_GET_CLOCK),
    IOCTL_NUMBER(KVM_SET_CLOCK),
    {0, 0},
};

#define LAYOUT_SIZE(key, type) {key, sizeof(type)}
#define LAYOUT_OFFSET(key, type, field) {key, offsetof(type, field)}
const struct shim_layout_value shim_layout_values[] = {
    LAYOUT_SIZE("sizeofKvmMsrList", struct kvm_msr_list),
    LAYOUT_SIZE("sizeofKvmMsrs", struct kvm_msrs),
    LAYOUT_SIZE("sizeofKvmCpuid2", struct kvm_cpuid2),
    LAYOUT_SIZE("sizeofKvmFpu", struct kvm_fpu),
    LAYOUT_SIZE("sizeofKvmXsave", struct kvm_xsave),
    LAYOUT_SIZE("sizeofKvmXcrs", struct kvm_xcrs),
    LAYOUT_SIZE("sizeofKvmXcr", struct kvm_xcr),
    LAYOUT_OFFSET("xcrsFlags", struct kvm_xcrs, flags),
    LAYOUT_OFFSET("xcrsXcrs", struct kvm_xcrs, xcrs),
    LAYOUT_OFFSET("xcrValue", struct kvm_xcr, value),
    LAYOUT_SIZE("sizeofKvmLapicState", struct kvm_lapic_state),
    LAYOUT_SIZE("sizeofKvmVcpuEvents", struct kvm_vcpu_events),
    LAYOUT_OFFSET("eventsExceptionErrorCode", struct kvm_vcpu_events, exception.error_code),
    LAYOUT_OFFSET("eventsInterrupt", struct kvm_vcpu_events, interrupt),
    LAYOUT_OFFSET("eventsNmi", struct kvm_vcpu_events, nmi),
    LAYOUT_OFFSET("eventsSipiVector", struct kvm_vcpu_events, sipi_vector),
    LAYOUT_OFFSET("eventsFlags", struct kvm_vcpu_events, flags),
    LAYOUT_OFFSET("eventsSmi", struct kvm_vcpu_events, smi),
    LAYOUT_OFFSET("eventsTripleFault", struct kvm_vcpu_events, triple_fault),
    LAYOUT_OFFSET("eventsExceptionHasPayload", struct kvm_vcpu_events, exception_has_payload),
    LAYOUT_OFFSET("eventsExceptionPayload", struct kvm_vcpu_events, exception_payload),
    LAYOUT_SIZE("sizeofKvmDebugregs", struct kvm_debugregs),
    LAYOUT_OFFSET("debugregsDr6", struct kvm_debugregs, dr6),
    LAYOUT_OFFSET("debugregsDr7", struct kvm_debugregs, dr7),
    LAYOUT_OFFSET("debugregsFlags", struct kvm_debugregs, flags),
    LAYOUT_SIZE("sizeofKvmIrqchip", struct kvm_irqchip),
    LAYOUT_OFFSET("irqchipChip", struct kvm_irqchip, chip),
    LAYOUT_SIZE("sizeofKvmPicState", struct kvm_pic_state),
    LAYOUT_OFFSET("picElcr", struct kvm_pic_state, elcr),
    LAYOUT_SIZE("sizeofKvmIoapicState", struct kvm_ioapic_state),
    LAYOUT_OFFSET("ioapicId", struct kvm_ioapic_state, id),
    LAYOUT_OFFSET("ioapicIrr", struct kvm_ioapic_state, irr),
    LAYOUT_OFFSET("ioapicRedirtbl", struct kvm_ioapic_state, redirtbl),
    LAYOUT_SIZE("sizeofKvmPitState2", struct kvm_pit_state2),
    LAYOUT_SIZE("sizeofKvmPitChannelState", struct kvm_pit_channel_state),
    LAYOUT_OFFSET("pitChannelLatchedCount", struct kvm_pit_channel_state, latched_count),
    LAYOUT_OFFSET("pitChannelMode", struct kvm_pit_channel_state, mode),
    LAYOUT_OFFSET("pitChannelGate", struct kvm_pit_channel_state, gate),
    LAYOUT_OFFSET("pitChannelCountLoadTime", struct kvm_pit_channel_state, count_load_time),
    LAYOUT_OFFSET("pitFlags", struct kvm_pit_state2, flags),
    LAYOUT_SIZE("sizeofKvmClockData", struct kvm_clock_data),
    LAYOUT_OFFSET("clockFlags", struct kvm_clock_data, flags),
    LAYOUT_OFFSET("clockRealtime", struct kvm_clock_data, realtime),
    LAYOUT_OFFSET("clockHostTsc", struct kvm_clock_data, host_tsc),
    {0, 0},
};
