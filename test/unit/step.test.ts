import { describe, expect, it } from 'vitest';
import { disassemble } from '../../src/debug/disasm.js';
import { flagChanges, formatStep } from '../../src/debug/step.js';
import type { KvmRegs } from '../../src/kvm/structs.js';
import { KVM_REGS_FIELDS } from '../../src/kvm/structs.js';

function regs(overrides: Partial<KvmRegs> = {}): KvmRegs {
  const r = {} as KvmRegs;
  for (const name of KVM_REGS_FIELDS) r[name] = 0n;
  r.rflags = 2n;
  return Object.assign(r, overrides);
}

const insnAt = (bytes: number[], ip: bigint, bitness: 16 | 32 | 64 = 16) => disassemble(Uint8Array.from(bytes), ip, bitness, 1)[0];

describe('formatStep', () => {
  it('shows 16-bit cs:ip, the bytes, the instruction and the registers it changed', () => {
    const before = regs({ rip: 1n });
    const after = regs({ rip: 4n, rsi: 0x2an });
    expect(formatStep(before, after, insnAt([0xbe, 0x2a, 0x00], 1n), 0x1000, 'real')).toBe(
      '1000:0001  be 2a 00             mov    $0x2a,%si                ; rsi=0x0→0x2a',
    );
  });

  it('decodes the flags an instruction set and cleared', () => {
    const before = regs({ rip: 5n, rflags: 0x3n, rax: 0x100n });
    const after = regs({ rip: 7n, rflags: 0x46n, rax: 0x100n });
    expect(formatStep(before, after, insnAt([0x84, 0xc0], 5n), 0x1000, 'real')).toBe(
      '1000:0005  84 c0                test   %al,%al                  ; rflags=0x3→0x46 (-CF +PF +ZF)',
    );
    expect(flagChanges(0x202n, 0x3002n)).toBe('-IF IOPL=3');
    expect(flagChanges(0x2n, 0x2n)).toBe('');
  });

  it('lists RIP only when the instruction did not fall through', () => {
    const jump = formatStep(regs({ rip: 7n }), regs({ rip: 0x1bn }), insnAt([0x74, 0x12], 7n), 0x1000, 'real');
    expect(jump).toBe('1000:0007  74 12                je     0x1b                     ; rip=0x7→0x1b');
    const notTaken = formatStep(regs({ rip: 7n }), regs({ rip: 9n }), insnAt([0x74, 0x12], 7n), 0x1000, 'real');
    expect(notTaken).toBe('1000:0007  74 12                je     0x1b');
  });

  it('lists several registers in kvm_regs order, in 32- and 64-bit code', () => {
    const before = regs({ rip: 0x100000n, rsp: 0x9000n });
    const after = regs({ rip: 0x100005n, rsp: 0x8ffcn, rax: 0x2badb002n, r15: 1n });
    expect(formatStep(before, after, insnAt([0xb8, 0x02, 0xb0, 0xad, 0x2b], 0x100000n, 32), 8, 'protected')).toBe(
      '0008:00100000  b8 02 b0 ad 2b       mov    $0x2badb002,%eax         ; rax=0x0→0x2badb002 rsp=0x9000→0x8ffc r15=0x0→0x1',
    );
    const long = formatStep(
      regs({ rip: 0xffffffff81000000n, rsp: 0x8000n }),
      regs({ rip: 0xffffffff81000003n, rsp: 0x8000n, rbp: 0x8000n }),
      insnAt([0x48, 0x89, 0xe5], 0xffffffff81000000n, 64),
      0x18,
      'long',
    );
    expect(long).toBe('0018:ffffffff81000000  48 89 e5             mov    %rsp,%rbp                ; rbp=0x0→0x8000');
  });

  it('shows the first stop without changes, and an instruction it could not read', () => {
    expect(formatStep(undefined, regs({ rip: 0n }), insnAt([0xfc], 0n), 0x1000, 'real')).toBe('1000:0000  fc                   cld');
    expect(formatStep(regs({ rip: 0x10n }), regs({ rip: 0x12n, rax: 1n }), undefined, 0x1000, 'real')).toBe(
      '1000:0010                       (not decoded)                   ; rax=0x0→0x1 rip=0x10→0x12',
    );
    expect(formatStep(undefined, regs({ rip: 0x7c00n }), undefined, 0, 'real')).toBe('0000:7c00                       (not decoded)');
  });
});
