/*
 * A VM's destruction after this process has exited. The last close of a VM fd makes the kernel
 * destroy the VM, and with an irqchip that takes 15-25 ms (an SRCU grace period per PIC, IOAPIC
 * and PIT device it unregisters). A process that exits holding the fd waits for it in its exit,
 * and whoever waits for the process (a shell, a test harness) waits too.
 *
 * shim_destroy_after_exit hands a reference to each fd to a child process that shares this
 * process's memory (CLONE_VM: no page tables are copied, the clone costs microseconds) but has
 * its own copy of the fd table. The child closes every other fd it inherited (so that nobody
 * waiting for this process's stdout to end waits for it), then blocks in read(2) on a pipe whose
 * only write end this process holds. When this process exits, the read ends and the child exits:
 * its exit closes the fds and tears down the memory this process left, after this process's
 * parent has been told it ended. The child, reparented, is reaped by init (or a subreaper).
 *
 * The child runs on its own small stack in shared memory, with every signal blocked, and makes
 * raw system calls only: glibc's wrappers would write errno into this thread's TLS, which it
 * shares.
 */
#define _GNU_SOURCE
#include "kvm_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* The child's stack; the hand-over record sits at its low end, far below what the child uses. */
#define TEARDOWN_STACK_SIZE (64 * 1024)
/* How long this process waits for the child to have closed the fds it must not hold. */
#define TEARDOWN_READY_TIMEOUT_NS 1000000000L

enum { HANDOVER_WAITING = 0, HANDOVER_READY = 1 };

struct handover {
  int fds[SHIM_TEARDOWN_MAX_FDS + 1]; /* the fds to keep, and the pipe's read end; ascending */
  int count;
  int pipe_read;
  int state; /* HANDOVER_WAITING, HANDOVER_READY, or -errno; futex word */
};

static long raw_syscall3(long number, long a, long b, long c) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(number), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return ret;
}

static long raw_syscall6(long number, long a, long b, long c, long d, long e, long f) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

static void tell_parent(struct handover *h, int state) {
  __atomic_store_n(&h->state, state, __ATOMIC_SEQ_CST);
  raw_syscall6(SYS_futex, (long)&h->state, FUTEX_WAKE, 1, 0, 0, 0);
}

static int teardown_child(void *arg) {
  struct handover *h = arg;
  /* Close the gaps between the kept fds (ascending), then everything above the last. */
  unsigned int next = 0;
  for (int i = 0; i < h->count; i++) {
    unsigned int keep = (unsigned int)h->fds[i];
    if (keep > next) {
      long r = raw_syscall3(SYS_close_range, next, keep - 1, 0);
      if (r < 0) {
        tell_parent(h, (int)r);
        raw_syscall3(SYS_exit, 1, 0, 0);
      }
    }
    next = keep + 1;
  }
  long r = raw_syscall3(SYS_close_range, next, ~0U, 0);
  if (r < 0) {
    tell_parent(h, (int)r);
    raw_syscall3(SYS_exit, 1, 0, 0);
  }
  raw_syscall6(SYS_prctl, PR_SET_NAME, (long)"tskvm-teardown", 0, 0, 0, 0);
  int pipe_read = h->pipe_read; /* h is not ours to read once the parent has been told */
  tell_parent(h, HANDOVER_READY);
  char byte;
  /* 0 at end of file: every write end is closed, the parent has exited. An error other than
   * EINTR ends the wait too (the VM then goes now, not never), so the loop cannot spin. */
  long n;
  do {
    n = raw_syscall3(SYS_read, pipe_read, (long)&byte, 1);
  } while (n > 0 || n == -EINTR);
  raw_syscall3(SYS_exit, 0, 0, 0);
  return 0;
}

static int compare_fds(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

long shim_destroy_after_exit(const int *fds, int count) {
  if (count < 1 || count > SHIM_TEARDOWN_MAX_FDS) return -EINVAL;
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) < 0) return -errno;
  /* Never unmapped: after the hand-over the child may still run on it until this process exits. */
  char *stack = mmap(NULL, TEARDOWN_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    int err = errno;
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return -err;
  }
  struct handover *h = (struct handover *)stack;
  memcpy(h->fds, fds, (size_t)count * sizeof(int));
  h->fds[count] = pipe_fds[0];
  h->count = count + 1;
  qsort(h->fds, (size_t)h->count, sizeof(int), compare_fds);
  h->pipe_read = pipe_fds[0];
  h->state = HANDOVER_WAITING;

  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  /* No exit signal: this process is not told when the child ends, and never waits for it. */
  int pid = clone(teardown_child, stack + TEARDOWN_STACK_SIZE, CLONE_VM, h);
  int clone_err = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  close(pipe_fds[0]);
  if (pid < 0) {
    close(pipe_fds[1]);
    munmap(stack, TEARDOWN_STACK_SIZE);
    return -clone_err;
  }

  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += TEARDOWN_READY_TIMEOUT_NS / 1000000000L;
  int state;
  while ((state = __atomic_load_n(&h->state, __ATOMIC_SEQ_CST)) == HANDOVER_WAITING) {
    struct timespec now, left;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ns = (deadline.tv_sec - now.tv_sec) * 1000000000L + (deadline.tv_nsec - now.tv_nsec);
    if (ns <= 0) break;
    left.tv_sec = ns / 1000000000L;
    left.tv_nsec = ns % 1000000000L;
    syscall(SYS_futex, &h->state, FUTEX_WAIT, HANDOVER_WAITING, &left, NULL, 0);
  }
  if (state != HANDOVER_READY) {
    /* The child failed (it has exited) or is late: it holds nothing this process needs. */
    close(pipe_fds[1]);
    return state < 0 ? state : -ETIMEDOUT;
  }
  /* pipe_fds[1] stays open (close-on-exec) until this process ends. */
  return pid;
}
