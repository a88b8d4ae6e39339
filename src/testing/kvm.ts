/**
 * Whether this host can run tskvm guests, and why not: what a test suite needs to skip (or, under
 * TSKVM_REQUIRE_KVM=1, fail) where /dev/kvm is unusable. The check is the one startGuest makes —
 * a backend loads, /dev/kvm (or TSKVM_KVM_DEVICE) opens read-write, answers API version 12 and has
 * every capability tskvm needs — so "usable" here means guests can start.
 */
import { Kvm, kvmDevicePath } from '../kvm/ioctls.js';

/** The environment variable that turns "skip where /dev/kvm is unusable" into a failure. */
export const REQUIRE_KVM_ENV = 'TSKVM_REQUIRE_KVM';

export interface KvmStatus {
  /** Guests can run here. */
  readonly usable: boolean;
  /** The device checked: /dev/kvm, or TSKVM_KVM_DEVICE. */
  readonly device: string;
  /** Why guests cannot run, with what to do ('' when usable). */
  readonly reason: string;
  /** The error's code (ENOKVM, EKVMACCESS, EKVMAPI, EKVMCAP, EPLATFORM, a backend's load error...); undefined when usable. */
  readonly code: string | undefined;
}

/** One answer per device path: the host does not change while a test run goes on. */
const checked = new Map<string, KvmStatus>();

/** Whether guests can run here, and if not why (cached per device path). */
export function kvmStatus(): KvmStatus {
  const device = kvmDevicePath();
  let status = checked.get(device);
  if (!status) {
    status = probe(device);
    checked.set(device, status);
  }
  return status;
}

/** TSKVM_REQUIRE_KVM=1: an unusable /dev/kvm is a failure, not a reason to skip (CI sets it where /dev/kvm exists). */
export function kvmRequired(): boolean {
  return process.env[REQUIRE_KVM_ENV] === '1';
}

/** What a test that boots guests should do here: run, skip (with the reason) or fail (with the message). */
export type KvmGate = { readonly action: 'run' } | { readonly action: 'skip' | 'fail'; readonly reason: string };

/** The decision kvmTest and kvmDescribe (vitest and node:test alike) act on. */
export function kvmGate(status: KvmStatus = kvmStatus(), required: boolean = kvmRequired()): KvmGate {
  if (status.usable) return { action: 'run' };
  if (required) return { action: 'fail', reason: `${REQUIRE_KVM_ENV}=1, but guests cannot run here: ${status.reason}` };
  return { action: 'skip', reason: `no usable KVM: ${status.reason}` };
}

function probe(device: string): KvmStatus {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    const reason = `tskvm runs x86-64 guests on Linux x86-64 hosts with KVM; this is ${process.platform} ${process.arch}`;
    return { usable: false, device, reason, code: 'EPLATFORM' };
  }
  try {
    Kvm.open(device).close();
    return { usable: true, device, reason: '', code: undefined };
  } catch (err) {
    const e = err as { message?: unknown; code?: unknown };
    const message = typeof e.message === 'string' ? e.message : String(err);
    return { usable: false, device, reason: message, code: typeof e.code === 'string' ? e.code : 'EKVM' };
  }
}
