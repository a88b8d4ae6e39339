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
 * exit, which a plain PioDevice does not see: it is a CpuPioDevice (device.ts), and the exit loop
 * hands the dispatcher an IoCpu (fetched only when a device asks). Without one (string I/O, or a
 * dispatcher given no registers) it reads all ones and ignores writes. With several vCPUs each
 * vCPU thread keeps its own VmPort (src/board/mailbox.ts): the registers never cross threads.
 */
import type { CpuPioDevice, IoCpu, PioSize, Snapshottable } from './device.js';
import { stateFields } from './state-check.js';

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

export interface VmPortConfig {
  /** Guest RAM in bytes (CMD_GETRAMSIZE). */
  memorySize: number;
}

/** vmport keeps nothing between commands: its saved state is empty (so a snapshot need not list it as lost). */
export type VmPortState = Record<string, never>;

export class VmPort implements CpuPioDevice, Snapshottable<VmPortState> {
  constructor(private readonly config: VmPortConfig) {}

  state(): VmPortState {
    return {};
  }

  restore(state: VmPortState): void {
    stateFields('vmport', state);
  }

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
