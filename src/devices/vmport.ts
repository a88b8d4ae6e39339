/**
 * QEMU's VMware backdoor port (hw/i386/vmport.c, `-machine vmport=on`) at 0x5658 ("VX"): a
 * guest puts the magic 0x564D5868 ("VMXh") in EAX and a command in CL, and an `in` from the port
 * returns the answer in EAX and other registers — what VMware tools and kvm-unit-tests'
 * vmware_backdoors test use. Commands answered, as QEMU answers them:
 *
 * - CMD_GETVERSION (0x0A): EAX = 6, EBX = the magic (how guests detect the hypervisor).
 * - CMD_GETRAMSIZE (0x14): EAX = RAM size in bytes (low 32 bits), EBX = 0x1177.
 * - Anything else, or EAX without the magic: EAX = 0xFFFFFFFF (QEMU's "signal unsupported
 *   command"), other registers untouched.
 *
 * EAX is set whatever the access width (QEMU's x-read-set-eax), and an `out` to the port runs
 * the same command with its answer in EAX. The device needs the vCPU's registers during the
 * exit, which a plain PioDevice does not see: it implements CpuPioDevice, and the exit path
 * passes the registers in IoAccess.cpu (see the proposal in the header of CpuPioDevice). Without
 * them (an `in` handed over as a plain PioDevice access) it reads all ones and ignores writes.
 */
import type { PioDevice, PioSize } from './device.js';

export const VMPORT_PORT = 0x5658;
export const VMPORT_SIZE = 1;
export const VMPORT_MAGIC = 0x564d5868;
export const VMPORT_CMD_GETVERSION = 0x0a;
export const VMPORT_CMD_GETRAMSIZE = 0x14;
/** What CMD_GETVERSION returns in EAX (QEMU's value). */
export const VMPORT_VERSION = 6;
/** What CMD_GETRAMSIZE leaves in EBX (QEMU's value). */
export const VMPORT_RAMSIZE_EBX = 0x1177;
export const VMPORT_UNSUPPORTED = 0xffffffff;
const COMMAND_MASK = 0xff; // QEMU takes the command from CL
const U32_MASK = 0xffffffffn;

/** The general registers an I/O exit may read and change (KVM_GET_REGS / KVM_SET_REGS names). */
export type IoCpuRegister = 'rax' | 'rbx' | 'rcx' | 'rdx' | 'rsi' | 'rdi';

/**
 * The vCPU's registers during one I/O exit. Proposed as `IoAccess.cpu` (src/devices/dispatch.ts):
 * the exit loop passes an object that calls KVM_GET_REGS on the first `get()` of the exit and,
 * if `set()` was called, KVM_SET_REGS before the next KVM_RUN (RIP untouched: KVM completes the
 * `in` and skips the instruction on that KVM_RUN, merging the data into the RAX it finds).
 */
export interface IoCpu {
  get(register: IoCpuRegister): bigint;
  set(register: IoCpuRegister, value: bigint): void;
}

/** A port device that needs the vCPU's registers (QEMU's vmport): handleIo prefers these methods when it has IoAccess.cpu. */
export interface CpuPioDevice extends PioDevice {
  pioReadCpu(offset: number, size: PioSize, cpu: IoCpu): number;
  pioWriteCpu(offset: number, size: PioSize, value: number, cpu: IoCpu): void;
}

export function isCpuPioDevice(device: PioDevice): device is CpuPioDevice {
  return typeof (device as Partial<CpuPioDevice>).pioReadCpu === 'function';
}

export interface VmPortConfig {
  /** Guest RAM in bytes (CMD_GETRAMSIZE). */
  memorySize: number;
}

export class VmPort implements CpuPioDevice {
  constructor(private readonly config: VmPortConfig) {}

  /** Without the registers there is no command to run: an unassigned port's answer. */
  pioRead(_offset: number, _size: PioSize): number {
    return VMPORT_UNSUPPORTED;
  }

  pioWrite(_offset: number, _size: PioSize, _value: number): void {}

  pioReadCpu(_offset: number, _size: PioSize, cpu: IoCpu): number {
    return this.command(cpu);
  }

  pioWriteCpu(_offset: number, _size: PioSize, _value: number, cpu: IoCpu): void {
    this.command(cpu);
  }

  /** Runs the command in CL; EAX gets the answer (also returned, as the `in` data). */
  private command(cpu: IoCpu): number {
    let eax = VMPORT_UNSUPPORTED;
    if (Number(cpu.get('rax') & U32_MASK) === VMPORT_MAGIC) {
      switch (Number(cpu.get('rcx') & BigInt(COMMAND_MASK))) {
        case VMPORT_CMD_GETVERSION:
          cpu.set('rbx', BigInt(VMPORT_MAGIC));
          eax = VMPORT_VERSION;
          break;
        case VMPORT_CMD_GETRAMSIZE:
          cpu.set('rbx', BigInt(VMPORT_RAMSIZE_EBX));
          eax = this.config.memorySize % 2 ** 32;
          break;
        default:
          break; // QEMU logs "vmport: unknown command" and signals it in EAX
      }
    }
    cpu.set('rax', BigInt(eax));
    return eax;
  }
}
