/*
 * A file read whole, once, into memory of its own: how the CLI loads its bundle (1.2 MB) and that
 * bundle's V8 code cache at every launch (src/cli/code-cache.cts), where node:fs made a Buffer,
 * then V8 a string copy of it, then the wrapped copy it compiled. Under nested virtualisation each
 * new page costs ~3 us to fault in, ~300 pages per copy of the bundle; MAP_POPULATE takes this
 * one's in a single call. The memory is anonymous and private: a file rewritten in place while
 * tskvm runs changes nothing it reads (a mapping of the file itself would then fault with SIGBUS).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvm_shim.h"

void *shim_read_file(const char *path, size_t max, size_t *size, int *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return NULL;
  }
  struct stat st;
  void *data = NULL;
  *err = 0;
  if (fstat(fd, &st) < 0) {
    *err = errno;
  } else if (!S_ISREG(st.st_mode)) {
    *err = EINVAL;
  } else if (st.st_size <= 0) {
    *err = ENODATA; /* nothing to map: the caller reads it the ordinary way */
  } else if ((uint64_t)st.st_size > max) {
    *err = EFBIG;
  } else {
    size_t want = (size_t)st.st_size;
    data = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (data == MAP_FAILED) {
      *err = errno;
      data = NULL;
    } else {
      size_t got = 0;
      int read_err = 0;
      while (got < want) {
        ssize_t n = read(fd, (char *)data + got, want - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) read_err = errno;
        if (n <= 0) break;
        got += (size_t)n;
      }
      if (got != want) {
        /* A read error, or shorter than fstat said (truncated meanwhile): no partial file. */
        *err = read_err != 0 ? read_err : EIO;
        munmap(data, want);
        data = NULL;
      } else {
        *size = want;
      }
    }
  }
  close(fd);
  return data;
}

void shim_free_file(void *data, size_t size) { munmap(data, size); }
