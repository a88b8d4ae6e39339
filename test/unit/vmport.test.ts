/** QEMU's vmport backdoor: the commands kvm-unit-tests' vmware_backdoors test checks, over the IoCpu registers the exit loop hands over. */
import { describe, expect, it } from 'vitest';
import { isCpuPioDevice, type IoCpu, type IoCpuRegister } from '../../src/devices/device.js';
import { VMPORT_CMD_GETRAMSIZE, VMPORT_CMD_GETVERSION, VMPORT_MAGIC, VmPort } from '../../src/devices/vmport.js';

class Regs implements IoCpu {
  values: Record<IoCpuRegister, bigint> = { rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n };
  constructor(init: Partial<Record<IoCpuRegister, bigint>>) {
    Object.assign(this.values, init);
  }
  get(r: IoCpuRegister): bigint {
    return this.values[r];
  }
  set(r: IoCpuRegister, v: bigint): void {
    this.values[r] = v;
  }
}

const DEFAULT = 0xdeadbeefn;

describe('vmport', () => {
  const port = new VmPort({ memorySize: 256 * 2 ** 20 });

  it('answers CMD_GETVERSION with EAX = 6 and EBX = the magic', () => {
    const regs = new Regs({ rax: BigInt(VMPORT_MAGIC), rcx: BigInt(VMPORT_CMD_GETVERSION), rbx: DEFAULT, rdx: 0x5658n });
    expect(port.pioReadCpu(0, 4, regs)).toBe(6);
    expect(regs.values.rax).toBe(6n);
    expect(regs.values.rbx).toBe(BigInt(VMPORT_MAGIC));
    expect(regs.values.rdx).toBe(0x5658n);
  });

  it('answers CMD_GETRAMSIZE with the RAM size and EBX = 0x1177', () => {
    const regs = new Regs({ rax: BigInt(VMPORT_MAGIC), rcx: BigInt(VMPORT_CMD_GETRAMSIZE) });
    expect(port.pioReadCpu(0, 4, regs)).toBe(256 * 2 ** 20);
    expect(regs.values.rbx).toBe(0x1177n);
  });

  it('signals an unknown command (0xFFF: CL = 0xFF) or a missing magic in EAX and leaves EBX alone', () => {
    for (const init of [
      { rax: BigInt(VMPORT_MAGIC), rcx: 0xfffn },
      { rax: 0x1234n, rcx: BigInt(VMPORT_CMD_GETVERSION) },
    ]) {
      const regs = new Regs({ ...init, rbx: DEFAULT });
      expect(port.pioReadCpu(0, 4, regs)).toBe(0xffffffff);
      expect(regs.values.rax).toBe(0xffffffffn);
      expect(regs.values.rbx).toBe(DEFAULT);
    }
  });

  it('takes the magic from EAX only (the upper half of RAX is ignored) and the command from CL', () => {
    const regs = new Regs({ rax: (0xffffn << 32n) | BigInt(VMPORT_MAGIC), rcx: 0x1200n | BigInt(VMPORT_CMD_GETVERSION) });
    expect(port.pioReadCpu(0, 1, regs)).toBe(6);
  });

  it('runs the command on an out too, and without registers behaves as an unassigned port', () => {
    const regs = new Regs({ rax: BigInt(VMPORT_MAGIC), rcx: BigInt(VMPORT_CMD_GETVERSION) });
    port.pioWriteCpu(0, 4, 0, regs);
    expect(regs.values.rbx).toBe(BigInt(VMPORT_MAGIC));
    expect(port.pioRead(0, 4)).toBe(0xffffffff);
    expect(isCpuPioDevice(port)).toBe(true);
    expect(isCpuPioDevice({ pioRead: () => 0, pioWrite: () => {} })).toBe(false);
  });
});
