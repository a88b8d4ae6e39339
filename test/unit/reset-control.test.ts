/** Port 0x92 (fast reset, A20) and the 0xCF9 reset control register, as kvm-unit-tests' init test and the FADT use them. */
import { describe, expect, it } from 'vitest';
import { ACPI_RESET_VALUE } from '../../src/arch/x86/acpi.js';
import {
  PORT_A_FAST_A20,
  PORT_A_FAST_RESET,
  RCR_FULL_RST,
  RCR_SYS_RST,
  ResetControlRegister,
  SystemControlPortA,
  type ResetKind,
  type ResetRegisterState,
} from '../../src/devices/reset-control.js';
import { UsageError } from '../../src/errors.js';

describe('System Control Port A (0x92)', () => {
  it('resets the CPUs softly on a 0→1 edge of bit 0 and keeps the bit (INIT, not power-on)', () => {
    const resets: ResetKind[] = [];
    const port = new SystemControlPortA({ reset: (k) => resets.push(k) });
    expect(port.pioRead(0, 1)).toBe(0);
    // init.c: outb(inb(0x92) & ~1); outb(inb(0x92) | 1)
    port.pioWrite(0, 1, port.pioRead(0, 1) & ~PORT_A_FAST_RESET);
    expect(resets).toEqual([]);
    port.pioWrite(0, 1, port.pioRead(0, 1) | PORT_A_FAST_RESET);
    expect(resets).toEqual(['soft']);
    expect(port.pioRead(0, 1) & PORT_A_FAST_RESET).toBe(PORT_A_FAST_RESET); // "left to 1" after a soft reset
    // Writing 1 again is no edge.
    port.pioWrite(0, 1, PORT_A_FAST_RESET);
    expect(resets).toEqual(['soft']);
    // A hard reset clears it.
    port.hardReset();
    expect(port.pioRead(0, 1) & PORT_A_FAST_RESET).toBe(0);
  });

  it('reads back A20 and the other bits as written', () => {
    const port = new SystemControlPortA({ reset: () => {} });
    port.pioWrite(0, 1, PORT_A_FAST_A20 | 0x40);
    expect(port.pioRead(0, 1)).toBe(PORT_A_FAST_A20 | 0x40);
    expect(port.a20).toBe(true);
    port.pioWrite(0, 1, 0);
    expect(port.a20).toBe(false);
  });
});

describe('Reset Control Register (0xCF9)', () => {
  const rig = () => {
    const resets: ResetKind[] = [];
    return { resets, rcr: new ResetControlRegister({ reset: (k) => resets.push(k) }) };
  };

  it('resets softly for RST_CPU alone (init.c: outb(0); outb(4)) and reads RST_CPU back as 0', () => {
    const { resets, rcr } = rig();
    rcr.pioWrite(0, 1, 0);
    expect(resets).toEqual([]);
    rcr.pioWrite(0, 1, 4);
    expect(resets).toEqual(['soft']);
    expect(rcr.pioRead(0, 1)).toBe(0);
  });

  it('resets hard for the FADT reset value (SYS_RST | RST_CPU) and for FULL_RST, keeping those bits', () => {
    const { resets, rcr } = rig();
    rcr.pioWrite(0, 1, ACPI_RESET_VALUE);
    expect(resets).toEqual(['hard']);
    expect(rcr.pioRead(0, 1)).toBe(RCR_SYS_RST);
    rcr.hardReset();
    rcr.pioWrite(0, 1, RCR_FULL_RST);
    expect(rcr.pioRead(0, 1)).toBe(RCR_FULL_RST);
    expect(resets).toEqual(['hard']); // no RST_CPU: no reset yet
    rcr.pioWrite(0, 1, RCR_FULL_RST | 4);
    expect(resets).toEqual(['hard', 'hard']);
  });
});

describe('reset registers: state and restore', () => {
  it('round-trips both latches without resetting anything, and an edge after it still resets', () => {
    const resets: ResetKind[] = [];
    const host = { reset: (k: ResetKind) => resets.push(k) };
    const portA = new SystemControlPortA(host);
    portA.pioWrite(0, 1, PORT_A_FAST_A20 | PORT_A_FAST_RESET);
    const rcr = new ResetControlRegister(host);
    rcr.pioWrite(0, 1, RCR_FULL_RST);
    expect(resets).toEqual(['soft']);
    const portA2 = new SystemControlPortA(host);
    portA2.restore(JSON.parse(JSON.stringify(portA.state())) as ResetRegisterState);
    const rcr2 = new ResetControlRegister(host);
    rcr2.restore(JSON.parse(JSON.stringify(rcr.state())) as ResetRegisterState);
    expect(resets).toEqual(['soft']);
    expect(portA2.a20).toBe(true);
    expect(portA2.pioRead(0, 1)).toBe(PORT_A_FAST_A20 | PORT_A_FAST_RESET); // init.c reads the bit back after the INIT
    expect(rcr2.pioRead(0, 1)).toBe(RCR_FULL_RST);
    portA2.pioWrite(0, 1, PORT_A_FAST_A20);
    portA2.pioWrite(0, 1, PORT_A_FAST_A20 | PORT_A_FAST_RESET);
    expect(resets).toEqual(['soft', 'soft']);
  });

  it('refuses malformed state with a UsageError', () => {
    const portA = new SystemControlPortA({ reset: () => {} });
    const rcr = new ResetControlRegister({ reset: () => {} });
    for (const bad of [null, {}, { value: 256 }, { value: -1 }, { value: '2' }]) {
      expect(() => portA.restore(bad as ResetRegisterState)).toThrow(UsageError);
    }
    expect(() => rcr.restore({ value: 4 })).toThrow(UsageError); // RST_CPU is never kept
    expect(() => rcr.restore({ value: 1 })).toThrow(UsageError);
  });
});
