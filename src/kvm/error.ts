/**
 * KvmError: a failed KVM call, with the errno and the call that failed, and a message that says
 * what to do about it. Codes: ENOKVM (no /dev/kvm), EKVMACCESS (no permission), EKVMAPI (API
 * version mismatch), EKVMCAP (a capability tskvm needs is missing), ERESOURCE (the process or
 * host ran out of file descriptors, memory or threads), EKVM (any other failure).
 */
import { constants as osConstants, userInfo } from 'node:os';
import { UsageError, type UsageErrorCode } from '../errors.js';
import { EACCES, ENODEV, ENOENT, ENXIO, EPERM } from './constants.js';

export type KvmErrorCode = 'ENOKVM' | 'EKVMACCESS' | 'EKVMAPI' | 'EKVMCAP' | 'ERESOURCE' | 'EKVM';

export class KvmError extends Error {
  override readonly name = 'KvmError';
  readonly code: KvmErrorCode;
  /** Positive errno, or 0 when the failure was not a syscall error (e.g. API mismatch). */
  readonly errno: number;
  /** The syscall or ioctl that failed, e.g. `open /dev/kvm` or `KVM_CREATE_VM`. */
  readonly syscall: string;

  constructor(code: KvmErrorCode, syscall: string, errno: number, message: string) {
    super(message);
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }

  /** An error for a call that returned -errno, with the remedy that errno calls for. */
  static fromErrno(syscall: string, negErrno: number, context = ''): KvmError {
    const errno = Math.abs(negErrno);
    const name = errnoNames()[errno];
    if (name !== undefined && RESOURCE_ERRNOS.has(name)) return KvmError.resource(syscall + (context ? ` (${context})` : ''), name, errno);
    const what = `${syscall} failed: ${errnoName(errno)}${context ? ` (${context})` : ''}`;
    return new KvmError('EKVM', syscall, errno, what);
  }

  /** open("/dev/kvm") failed: explain why the host cannot run VMs and how to fix it. */
  static fromOpen(devicePath: string, negErrno: number): KvmError {
    const errno = Math.abs(negErrno);
    if (errno === ENOENT || errno === ENODEV || errno === ENXIO) {
      return new KvmError(
        'ENOKVM',
        `open ${devicePath}`,
        errno,
        `${devicePath} is not available (${errnoName(errno)}): this host cannot run KVM guests. ` +
          'Enable virtualisation (VT-x/AMD-V) in the firmware and load the module (`modprobe kvm_intel` or `modprobe kvm_amd`); ' +
          'inside a VM, turn on nested virtualisation in the host (e.g. `kvm_intel nested=1`).',
      );
    }
    if (errno === EACCES || errno === EPERM) {
      const user = safeUserName();
      return new KvmError(
        'EKVMACCESS',
        `open ${devicePath}`,
        errno,
        `permission denied opening ${devicePath}: add your user to the kvm group ` +
          `(\`sudo usermod -aG kvm ${user}\`, then log in again) or run as a user who can read and write it.`,
      );
    }
    return KvmError.fromErrno(`open ${devicePath}`, negErrno);
  }

  /** The process or host is out of something (fds, memory, threads): say which limit to raise. */
  static resource(what: string, errnoCode: string, errno = osConstants.errno[errnoCode as keyof typeof osConstants.errno] ?? 0): KvmError {
    const advice =
      errnoCode === 'EMFILE'
        ? 'this process has too many open files: raise its limit (`ulimit -n`) or run fewer guests at once'
        : errnoCode === 'ENFILE'
          ? 'the host has too many open files: raise fs.file-max or run fewer guests at once'
          : errnoCode === 'EAGAIN'
            ? 'the host refused more threads or processes right now: raise `ulimit -u` or run fewer guests at once'
            : 'the host is out of memory for this: give the guest less RAM (--memory) or run fewer guests at once';
    return new KvmError('ERESOURCE', what, errno, `${what} failed: ${errnoName(errno)}: ${advice}`);
  }

  /** The device opened but answered KVM_GET_API_VERSION with -errno: it is not /dev/kvm. */
  static notKvm(devicePath: string, negErrno: number): KvmError {
    const errno = Math.abs(negErrno);
    return new KvmError(
      'ENOKVM',
      'KVM_GET_API_VERSION',
      errno,
      `${devicePath} is not a KVM device (KVM_GET_API_VERSION failed: ${errnoName(errno)}): ` +
        'point TSKVM_KVM_DEVICE at /dev/kvm, or unset it to use /dev/kvm.',
    );
  }

  static apiMismatch(version: number, expected: number): KvmError {
    return new KvmError(
      'EKVMAPI',
      'KVM_GET_API_VERSION',
      0,
      `KVM API version ${version} is not supported (tskvm needs ${expected}): the kernel's KVM is too old or too new for this build; update the kernel or tskvm.`,
    );
  }

  static missingCapability(name: string, why: string): KvmError {
    return new KvmError(
      'EKVMCAP',
      'KVM_CHECK_EXTENSION',
      0,
      `the host's KVM lacks ${name}, which tskvm needs for ${why}; a newer kernel is required.`,
    );
  }
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return '$USER';
  }
}

let errnoNameTable: Readonly<Record<number, string>> | undefined;

/** errno → its name (12 → ENOMEM), made on first use: only a failure needs it. */
function errnoNames(): Readonly<Record<number, string>> {
  return (errnoNameTable ??= Object.fromEntries(Object.entries(osConstants.errno).map(([name, value]) => [value, name])));
}

/** Errors that mean "out of something", not "KVM cannot". */
const RESOURCE_ERRNOS = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'EAGAIN']);

/** `ENOMEM (errno 12)`, the way strace would name it. */
export function errnoName(errno: number): string {
  return `${errnoNames()[errno] ?? 'errno'} (errno ${errno})`;
}

/**
 * A KvmError ERESOURCE for an error that means the process ran out of something while starting
 * a thread or loading code (EMFILE, ENOMEM, a worker that could not start for either); the error
 * itself otherwise.
 */
export function asResourceError(err: unknown, what: string): unknown {
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  if (code !== undefined && RESOURCE_ERRNOS.has(code)) return KvmError.resource(what, code);
  if (code === 'ERR_WORKER_OUT_OF_MEMORY') return KvmError.resource(what, 'ENOMEM');
  if (code === 'ERR_WORKER_INIT_FAILED') {
    const errno = [...RESOURCE_ERRNOS].find((name) => e.message.includes(name));
    if (errno) return KvmError.resource(what, errno);
  }
  return err;
}

/** An error as it crosses threads (postMessage keeps neither class nor extra fields). */
export interface ErrorMessage {
  name: string;
  message: string;
  stack: string | undefined;
  code: string | undefined;
  errno?: number;
  syscall?: string;
}

export function toErrorMessage(err: unknown): ErrorMessage {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err), stack: undefined, code: undefined };
  const e = err as Error & { code?: unknown; errno?: unknown; syscall?: unknown };
  return {
    name: e.name,
    message: e.message,
    stack: e.stack,
    code: typeof e.code === 'string' ? e.code : undefined,
    ...(typeof e.errno === 'number' ? { errno: e.errno } : {}),
    ...(typeof e.syscall === 'string' ? { syscall: e.syscall } : {}),
  };
}

/** The error again, of its class (KvmError, UsageError) where it had one of tskvm's. */
export function fromErrorMessage(m: ErrorMessage): Error {
  let err: Error;
  if (m.name === 'KvmError') err = new KvmError((m.code ?? 'EKVM') as KvmErrorCode, m.syscall ?? '', m.errno ?? 0, m.message);
  else if (m.name === 'UsageError') err = new UsageError(m.message, (m.code ?? 'EUSAGE') as UsageErrorCode);
  else err = Object.assign(new Error(m.message), m.code === undefined ? {} : { code: m.code });
  if (m.stack !== undefined) err.stack = m.stack;
  return err;
}
