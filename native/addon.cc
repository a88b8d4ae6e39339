// node-addon-api binding for the C shim. Validation and policy live in TypeScript (src/kvm/);
// this file only converts arguments, calls the shim and returns its value or -errno.
#include <napi.h>

#include <cerrno>
#include <cstddef>
#include <dlfcn.h>
#include <linux/kvm.h>
#include <poll.h>
#include <sys/mman.h>
#include <uv.h>

#include "kvm_shim.h"

namespace {

uint64_t ToU64(const Napi::Value &v) {
  bool lossless = true;
  return v.As<Napi::BigInt>().Uint64Value(&lossless);
}

void *ToPtr(const Napi::Value &v) { return reinterpret_cast<void *>(static_cast<uintptr_t>(ToU64(v))); }

// A mapping's address as a BigInt, or -errno as a (negative) BigInt.
Napi::Value MappingResult(Napi::Env env, void *p, int err) {
  if (p == nullptr) return Napi::BigInt::New(env, static_cast<int64_t>(-err));
  return Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)));
}

Napi::Value Open(const Napi::CallbackInfo &info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  return Napi::Number::New(info.Env(), shim_open(path.c_str()));
}

Napi::Value Close(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), shim_close(info[0].As<Napi::Number>().Int32Value()));
}

// ioctl(fd, request, arg?) for ioctls that take an integer argument or none.
Napi::Value IoctlInt(const Napi::CallbackInfo &info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  unsigned long request = static_cast<unsigned long>(info[1].As<Napi::Number>().Int64Value());
  unsigned long arg = info.Length() > 2 ? static_cast<unsigned long>(info[2].As<Napi::Number>().Int64Value()) : 0;
  return Napi::Number::New(info.Env(), static_cast<double>(shim_ioctl_int(fd, request, arg)));
}

// ioctl(fd, request, bytes) for ioctls that read or fill a struct: the struct is the caller's
// Uint8Array, laid out by src/kvm/structs.ts. No copy is made.
Napi::Value IoctlBuffer(const Napi::CallbackInfo &info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  unsigned long request = static_cast<unsigned long>(info[1].As<Napi::Number>().Int64Value());
  Napi::Uint8Array bytes = info[2].As<Napi::Uint8Array>();
  return Napi::Number::New(info.Env(), static_cast<double>(shim_ioctl_ptr(fd, request, bytes.Data())));
}

Napi::Value SetUserMemoryRegion(const Napi::CallbackInfo &info) {
  int r = shim_set_user_memory_region(
      info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Uint32Value(),
      info[2].As<Napi::Number>().Uint32Value(), static_cast<uint64_t>(info[3].As<Napi::Number>().Int64Value()),
      static_cast<uint64_t>(info[4].As<Napi::Number>().Int64Value()), ToU64(info[5]));
  return Napi::Number::New(info.Env(), r);
}

// The hot path: one call per VM exit. Kept free of allocation.
Napi::Value Run(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), shim_run(info[0].As<Napi::Number>().Int32Value()));
}

// runPastUnassigned(fd, kvmRun: ArrayBuffer, unassigned: Uint8Array, handled: Float64Array): as
// run, once per exit that JavaScript handles; exits to unassigned ports are counted in handled[0].
Napi::Value RunPastUnassigned(const Napi::CallbackInfo &info) {
  Napi::ArrayBuffer run = info[1].As<Napi::ArrayBuffer>();
  Napi::Uint8Array unassigned = info[2].As<Napi::Uint8Array>();
  Napi::Float64Array handled = info[3].As<Napi::Float64Array>();
  if (unassigned.ByteLength() < SHIM_PORT_MAP_BYTES || handled.ElementLength() < 1) return Napi::Number::New(info.Env(), -EINVAL);
  return Napi::Number::New(info.Env(), shim_run_past_unassigned(info[0].As<Napi::Number>().Int32Value(), run.Data(), run.ByteLength(),
                                                                unassigned.Data(), handled.Data()));
}

Napi::Value MmapAnonymous(const Napi::CallbackInfo &info) {
  int err = 0;
  bool shared = info.Length() < 2 || info[1].As<Napi::Boolean>().Value();
  void *p = shim_mmap_anonymous(static_cast<size_t>(info[0].As<Napi::Number>().Int64Value()), shared ? 1 : 0, &err);
  return MappingResult(info.Env(), p, err);
}

Napi::Value MmapFd(const Napi::CallbackInfo &info) {
  int err = 0;
  void *p = shim_mmap_fd(info[0].As<Napi::Number>().Int32Value(),
                         static_cast<size_t>(info[1].As<Napi::Number>().Int64Value()), &err);
  return MappingResult(info.Env(), p, err);
}

// mmapFileFixed(addr, size, fd, offset): the snapshot file's pages copy-on-write over guest RAM.
Napi::Value MmapFileFixed(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), shim_mmap_file_fixed(ToPtr(info[0]), static_cast<size_t>(info[1].As<Napi::Number>().Int64Value()),
                                                            info[2].As<Napi::Number>().Int32Value(),
                                                            static_cast<int64_t>(info[3].As<Napi::Number>().Int64Value())));
}

// mincore(addr, size, vec): vec is the caller's Uint8Array, one byte per page.
Napi::Value Mincore(const Napi::CallbackInfo &info) {
  Napi::Uint8Array vec = info[2].As<Napi::Uint8Array>();
  return Napi::Number::New(info.Env(), shim_mincore(ToPtr(info[0]), static_cast<size_t>(info[1].As<Napi::Number>().Int64Value()), vec.Data()));
}

Napi::Value Munmap(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(),
                           shim_munmap(ToPtr(info[0]), static_cast<size_t>(info[1].As<Napi::Number>().Int64Value())));
}

Napi::Value Madvise(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), shim_madvise(ToPtr(info[0]), static_cast<size_t>(info[1].As<Napi::Number>().Int64Value()),
                                                    info[2].As<Napi::Number>().Int32Value()));
}

// An ArrayBuffer over memory the caller mapped: no copy, no finalizer. The mapping's owner
// (Vm/Vcpu in src/vm/) unmaps it explicitly, after every thread has stopped using the view.
Napi::Value ExternalBuffer(const Napi::CallbackInfo &info) {
  return Napi::ArrayBuffer::New(info.Env(), ToPtr(info[0]),
                                static_cast<size_t>(info[1].As<Napi::Number>().Int64Value()));
}

Napi::Value ThreadSelf(const Napi::CallbackInfo &info) {
  return Napi::BigInt::New(info.Env(), shim_thread_self());
}

Napi::Value IsMainThread(const Napi::CallbackInfo &info) { return Napi::Boolean::New(info.Env(), shim_is_main_thread() != 0); }

// Whether this thread's event loop has something to do now, so that an exit loop sharing the
// thread (src/vcpu/caller-thread.ts) gives it a turn: a timer due (against the clock read now),
// a handle closing (its callback is due), or an fd ready in its epoll set (I/O, signals, worker
// messages, thread-pool completions, V8's foreground tasks all wake the loop so). Idle handles
// are not asked: Node's immediates keep theirs active until the pass that runs them ends, which
// is where that exit loop runs (the caller asks Node for pending immediates itself). A loop that
// cannot be asked says it has work: the caller then turns it.
static void NoteHandleWork(uv_handle_t *handle, void *arg) {
  bool *work = static_cast<bool *>(arg);
  if (*work) return;
  if (uv_is_closing(handle)) *work = true;
  else if (handle->type == UV_TIMER && uv_is_active(handle) && uv_timer_get_due_in(reinterpret_cast<uv_timer_t *>(handle)) == 0)
    *work = true;
}

Napi::Value LoopHasWork(const Napi::CallbackInfo &info) {
  uv_loop_t *loop = nullptr;
  if (napi_get_uv_event_loop(info.Env(), &loop) != napi_ok || loop == nullptr) return Napi::Boolean::New(info.Env(), true);
  uv_update_time(loop);
  bool work = false;
  uv_walk(loop, NoteHandleWork, &work);
  if (!work) {
    struct pollfd backend = {uv_backend_fd(loop), POLLIN, 0};
    work = backend.fd < 0 || poll(&backend, 1, 0) != 0;
  }
  return Napi::Boolean::New(info.Env(), work);
}

Napi::Value Isatty(const Napi::CallbackInfo &info) {
  return Napi::Boolean::New(info.Env(), shim_isatty(info[0].As<Napi::Number>().Int32Value()) == 1);
}

Napi::Value Kick(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), shim_kick(ToPtr(info[0]), ToU64(info[1])));
}

// sliceTimerCreate(runAddr): a timer id or -errno. sliceTimerSet(timer, firstNs, periodNs), sliceTimerDelete(timer): 0 or -errno.
Napi::Value SliceTimerCreate(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), static_cast<double>(shim_slice_timer_create(ToPtr(info[0]))));
}

Napi::Value SliceTimerSet(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), shim_slice_timer_set(static_cast<long>(info[0].As<Napi::Number>().Int64Value()),
                                                            info[1].As<Napi::Number>().Int64Value(),
                                                            info[2].As<Napi::Number>().Int64Value()));
}

Napi::Value SliceTimerDelete(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), shim_slice_timer_delete(static_cast<long>(info[0].As<Napi::Number>().Int64Value())));
}

// destroyAfterExit(fds: number[]): the pid of the child that holds them until this process exits, or -errno.
Napi::Value DestroyAfterExit(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) return Napi::Number::New(env, -EINVAL);
  Napi::Array list = info[0].As<Napi::Array>();
  uint32_t count = list.Length();
  if (count < 1 || count > SHIM_TEARDOWN_MAX_FDS) return Napi::Number::New(env, -EINVAL);
  int fds[SHIM_TEARDOWN_MAX_FDS];
  for (uint32_t i = 0; i < count; i++) {
    Napi::Value fd = list.Get(i);
    if (!fd.IsNumber()) return Napi::Number::New(env, -EINVAL);
    fds[i] = fd.As<Napi::Number>().Int32Value();
    if (fds[i] < 0) return Napi::Number::New(env, -EBADF);
  }
  return Napi::Number::New(env, static_cast<double>(shim_destroy_after_exit(fds, static_cast<int>(count))));
}

// The bundle loader's whole-file reads (native/file_read.c): the file info[0], at most info[1]
// bytes, read into memory of its own; nullptr with *err set.
void *ReadWhole(const Napi::CallbackInfo &info, size_t *size, int *err) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  return shim_read_file(path.c_str(), static_cast<size_t>(info[1].As<Napi::Number>().Int64Value()), size, err);
}

void FreeFile(napi_env, void *data, void *size) { shim_free_file(data, reinterpret_cast<size_t>(size)); }

// node_api_create_external_string_latin1 (Node >= 20.4; experimental, so absent from the headers
// without NAPI_EXPERIMENTAL): a string over the caller's bytes, no copy. Looked up at run time,
// so that the addon loads on every Node 20 and an older one copies instead.
using ExternalLatin1 = napi_status (*)(napi_env, char *, size_t, napi_finalize, void *, napi_value *, bool *);

// readFileLatin1(path, max): the file as a Latin-1 string over memory of its own (V8 reads it in
// place: the CLI's bundle becomes its script source without a copy), or -errno.
Napi::Value ReadFileLatin1(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  size_t size = 0;
  int err = 0;
  void *data = ReadWhole(info, &size, &err);
  if (data == nullptr) return Napi::Number::New(env, -err);
  static const ExternalLatin1 external =
      reinterpret_cast<ExternalLatin1>(dlsym(RTLD_DEFAULT, "node_api_create_external_string_latin1"));
  napi_value result;
  bool copied = false;
  // On success the string owns the memory: FreeFile runs when it is collected (or at once, when Node copied).
  if (external != nullptr && external(env, static_cast<char *>(data), size, FreeFile, reinterpret_cast<void *>(size), &result, &copied) == napi_ok)
    return Napi::Value(env, result);
  napi_status status = napi_create_string_latin1(env, static_cast<char *>(data), size, &result);
  shim_free_file(data, size);
  return status == napi_ok ? Napi::Value(env, result) : Napi::Number::New(env, -ENOMEM);
}

// readFile(path, max): the file as a Buffer over memory of its own, freed with it, or -errno.
Napi::Value ReadFile(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  size_t size = 0;
  int err = 0;
  void *data = ReadWhole(info, &size, &err);
  if (data == nullptr) return Napi::Number::New(env, -err);
  napi_value result;
  if (napi_create_external_buffer(env, size, data, FreeFile, reinterpret_cast<void *>(size), &result) != napi_ok) {
    shim_free_file(data, size);
    return Napi::Number::New(env, -ENOMEM);
  }
  return Napi::Value(env, result);
}

#define EXPORT_OFFSET(obj, type, field, key) \
  obj.Set(key, Napi::Number::New(env, static_cast<double>(offsetof(type, field))))

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  static int handler_installed = shim_install_kick_handler();
  (void)handler_installed;

  exports.Set("open", Napi::Function::New(env, Open));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("ioctl", Napi::Function::New(env, IoctlInt));
  exports.Set("ioctlBuffer", Napi::Function::New(env, IoctlBuffer));
  exports.Set("setUserMemoryRegion", Napi::Function::New(env, SetUserMemoryRegion));
  exports.Set("run", Napi::Function::New(env, Run));
  exports.Set("runPastUnassigned", Napi::Function::New(env, RunPastUnassigned));
  exports.Set("mmapAnonymous", Napi::Function::New(env, MmapAnonymous));
  exports.Set("mmapFd", Napi::Function::New(env, MmapFd));
  exports.Set("mmapFileFixed", Napi::Function::New(env, MmapFileFixed));
  exports.Set("mincore", Napi::Function::New(env, Mincore));
  exports.Set("munmap", Napi::Function::New(env, Munmap));
  exports.Set("madvise", Napi::Function::New(env, Madvise));
  exports.Set("externalBuffer", Napi::Function::New(env, ExternalBuffer));
  exports.Set("threadSelf", Napi::Function::New(env, ThreadSelf));
  exports.Set("isMainThread", Napi::Function::New(env, IsMainThread));
  exports.Set("isatty", Napi::Function::New(env, Isatty));
  exports.Set("loopHasWork", Napi::Function::New(env, LoopHasWork));
  exports.Set("kick", Napi::Function::New(env, Kick));
  exports.Set("sliceTimerCreate", Napi::Function::New(env, SliceTimerCreate));
  exports.Set("sliceTimerSet", Napi::Function::New(env, SliceTimerSet));
  exports.Set("sliceTimerDelete", Napi::Function::New(env, SliceTimerDelete));
  exports.Set("destroyAfterExit", Napi::Function::New(env, DestroyAfterExit));
  exports.Set("readFileLatin1", Napi::Function::New(env, ReadFileLatin1));
  exports.Set("readFile", Napi::Function::New(env, ReadFile));

  // The ioctl request numbers, from the kernel headers this addon was built against.
  Napi::Object ioctls = Napi::Object::New(env);
  for (const shim_ioctl_number *n = shim_ioctl_numbers; n->name != nullptr; n++) {
    ioctls.Set(n->name, Napi::Number::New(env, static_cast<double>(n->request)));
  }
  exports.Set("ioctls", ioctls);

  // Struct sizes and kvm_run offsets, so tests can hold src/kvm/ to the kernel's ABI.
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("sizeofKvmRegs", Napi::Number::New(env, sizeof(struct kvm_regs)));
  layout.Set("sizeofKvmSregs", Napi::Number::New(env, sizeof(struct kvm_sregs)));
  layout.Set("sizeofKvmSegment", Napi::Number::New(env, sizeof(struct kvm_segment)));
  EXPORT_OFFSET(layout, struct kvm_run, immediate_exit, "runImmediateExit");
  EXPORT_OFFSET(layout, struct kvm_run, exit_reason, "runExitReason");
  EXPORT_OFFSET(layout, struct kvm_run, io.direction, "runIoDirection");
  EXPORT_OFFSET(layout, struct kvm_run, io.size, "runIoSize");
  EXPORT_OFFSET(layout, struct kvm_run, io.port, "runIoPort");
  EXPORT_OFFSET(layout, struct kvm_run, io.count, "runIoCount");
  EXPORT_OFFSET(layout, struct kvm_run, io.data_offset, "runIoDataOffset");
  EXPORT_OFFSET(layout, struct kvm_run, mmio.phys_addr, "runMmioPhysAddr");
  EXPORT_OFFSET(layout, struct kvm_run, mmio.data, "runMmioData");
  EXPORT_OFFSET(layout, struct kvm_run, mmio.len, "runMmioLen");
  EXPORT_OFFSET(layout, struct kvm_run, mmio.is_write, "runMmioIsWrite");
  EXPORT_OFFSET(layout, struct kvm_run, fail_entry.hardware_entry_failure_reason, "runFailEntryReason");
  EXPORT_OFFSET(layout, struct kvm_run, fail_entry.cpu, "runFailEntryCpu");
  EXPORT_OFFSET(layout, struct kvm_run, internal.suberror, "runInternalSuberror");
  EXPORT_OFFSET(layout, struct kvm_run, internal.ndata, "runInternalNdata");
  EXPORT_OFFSET(layout, struct kvm_run, internal.data, "runInternalData");
  EXPORT_OFFSET(layout, struct kvm_run, hw.hardware_exit_reason, "runHwExitReason");
  EXPORT_OFFSET(layout, struct kvm_regs, rip, "regsRip");
  EXPORT_OFFSET(layout, struct kvm_regs, rflags, "regsRflags");
  EXPORT_OFFSET(layout, struct kvm_sregs, cs, "sregsCs");
  EXPORT_OFFSET(layout, struct kvm_sregs, gdt, "sregsGdt");
  EXPORT_OFFSET(layout, struct kvm_sregs, cr0, "sregsCr0");
  EXPORT_OFFSET(layout, struct kvm_sregs, efer, "sregsEfer");
  EXPORT_OFFSET(layout, struct kvm_sregs, apic_base, "sregsApicBase");
  EXPORT_OFFSET(layout, struct kvm_sregs, interrupt_bitmap, "sregsInterruptBitmap");
  layout.Set("sizeofKvmCpuidEntry2", Napi::Number::New(env, sizeof(struct kvm_cpuid_entry2)));
  layout.Set("sizeofKvmMsrEntry", Napi::Number::New(env, sizeof(struct kvm_msr_entry)));
  layout.Set("sizeofKvmPitConfig", Napi::Number::New(env, sizeof(struct kvm_pit_config)));
  layout.Set("sizeofKvmIrqLevel", Napi::Number::New(env, sizeof(struct kvm_irq_level)));
  layout.Set("sizeofKvmMpState", Napi::Number::New(env, sizeof(struct kvm_mp_state)));
  layout.Set("sizeofKvmGuestDebug", Napi::Number::New(env, sizeof(struct kvm_guest_debug)));
  EXPORT_OFFSET(layout, struct kvm_run, debug.arch.exception, "runDebugException");
  EXPORT_OFFSET(layout, struct kvm_run, debug.arch.pc, "runDebugPc");
  EXPORT_OFFSET(layout, struct kvm_run, debug.arch.dr6, "runDebugDr6");
  EXPORT_OFFSET(layout, struct kvm_run, debug.arch.dr7, "runDebugDr7");
  layout.Set("sizeofKvmIrqRoutingEntry", Napi::Number::New(env, sizeof(struct kvm_irq_routing_entry)));
  // The snapshot structs' sizes and offsets, computed in C (see kvm_shim.h).
  for (const shim_layout_value *v = shim_layout_values; v->name != nullptr; v++) {
    layout.Set(v->name, Napi::Number::New(env, static_cast<double>(v->value)));
  }
  exports.Set("layout", layout);
  exports.Set("kickSignal", Napi::Number::New(env, shim_kick_signal()));
  Napi::Object madvice = Napi::Object::New(env);
  madvice.Set("MADV_MERGEABLE", Napi::Number::New(env, MADV_MERGEABLE));
  madvice.Set("MADV_HUGEPAGE", Napi::Number::New(env, MADV_HUGEPAGE));
#ifdef MADV_POPULATE_WRITE
  madvice.Set("MADV_POPULATE_WRITE", Napi::Number::New(env, MADV_POPULATE_WRITE));
#endif
  exports.Set("madvice", madvice);
  return exports;
}

}  // namespace

NODE_API_MODULE(tskvm, Init)
