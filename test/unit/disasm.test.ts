import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BAD_INSTRUCTION, bitnessFor, disassemble } from '../../src/debug/disasm.js';

const lines = (code: number[] | Uint8Array, ip: bigint, bitness: 16 | 32 | 64, max = 100): string[] =>
  disassemble(Uint8Array.from(code), ip, bitness, max).map((i) => `${i.ip.toString(16)}: ${i.bytes} | ${i.text}`);

describe('disassemble', () => {
  it("decodes the hello guest's real-mode code as objdump -mi8086 prints it", () => {
    // guests/hello.S, as built: the first 0x2a bytes are code, then the message.
    const hello = new Uint8Array(readFileSync(new URL('../../guests/build/hello.bin', import.meta.url)));
    expect(lines(hello.subarray(0, 0x2a), 0n, 16)).toEqual([
      '0: fc | cld',
      '1: be 2a 00 | mov    $0x2a,%si',
      '4: ac | lods   (%si),%al',
      '5: 84 c0 | test   %al,%al',
      '7: 74 12 | je     0x1b',
      '9: 88 c4 | mov    %al,%ah',
      'b: ba fd 03 | mov    $0x3fd,%dx',
      'e: ec | in     %dx,%al',
      'f: a8 20 | test   $0x20,%al',
      '11: 74 fb | je     0xe',
      '13: 88 e0 | mov    %ah,%al',
      '15: ba f8 03 | mov    $0x3f8,%dx',
      '18: ee | out    %al,%dx',
      '19: eb e9 | jmp    0x4',
      '1b: 66 b8 2a 00 00 00 | mov    $0x2a,%eax',
      '21: ba f4 00 | mov    $0xf4,%dx',
      '24: 66 ef | out    %eax,%dx',
      '26: fa | cli',
      '27: f4 | hlt',
      '28: eb fc | jmp    0x26',
    ]);
  });

  it('decodes 16-bit segment loads, far jumps and overrides', () => {
    expect(lines([0x8e, 0xd8, 0xea, 0x00, 0x7c, 0x00, 0x00, 0x26, 0x89, 0x07, 0xcd, 0x13, 0x8b, 0x46, 0xfe], 0x7c00n, 16)).toEqual([
      '7c00: 8e d8 | mov    %ax,%ds',
      '7c02: ea 00 7c 00 00 | ljmp   $0x0,$0x7c00',
      '7c07: 26 89 07 | mov    %ax,%es:(%bx)',
      '7c0a: cd 13 | int    $0x13',
      '7c0c: 8b 46 fe | mov    -0x2(%bp),%ax',
    ]);
  });

  it('decodes 32-bit code with the operand-size suffix only where objdump needs one', () => {
    const code = [
      0xb8, 0x02, 0xb0, 0xad, 0x2b, 0x8b, 0x44, 0x24, 0x04, 0xc7, 0x00, 0x01, 0, 0, 0, 0xe8, 0, 0, 0, 0, 0xea, 0, 0, 0x10, 0, 0x08, 0, 0x0f,
      0x0b,
    ];
    expect(lines(code, 0x100000n, 32)).toEqual([
      '100000: b8 02 b0 ad 2b | mov    $0x2badb002,%eax',
      '100005: 8b 44 24 04 | mov    0x4(%esp),%eax',
      '100009: c7 00 01 00 00 00 | movl   $0x1,(%eax)',
      '10000f: e8 00 00 00 00 | call   0x100014',
      '100014: ea 00 00 10 00 08 00 | ljmp   $0x8,$0x100000',
      '10001b: 0f 0b | ud2',
    ]);
  });

  it('decodes 64-bit code: RIP-relative operands get the target as a comment, as in objdump', () => {
    const code = [
      0x48, 0x8d, 0x05, 0x10, 0, 0, 0, 0x48, 0x89, 0xe5, 0x0f, 0x22, 0xc0, 0x66, 0x0f, 0x1f, 0x44, 0, 0, 0x48, 0x83, 0xc4, 0xf8, 0x48, 0x8b,
      0x45, 0xf8, 0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 0x0f, 0xb6, 0xc0, 0xeb, 0xfe, 0xc3,
    ];
    expect(lines(code, 0xffffffff81000000n, 64)).toEqual([
      'ffffffff81000000: 48 8d 05 10 00 00 00 | lea    0x10(%rip),%rax        # 0xffffffff81000017',
      'ffffffff81000007: 48 89 e5 | mov    %rsp,%rbp',
      'ffffffff8100000a: 0f 22 c0 | mov    %rax,%cr0',
      'ffffffff8100000d: 66 0f 1f 44 00 00 | nopw   0x0(%rax,%rax)',
      'ffffffff81000013: 48 83 c4 f8 | add    $0xfffffffffffffff8,%rsp',
      'ffffffff81000017: 48 8b 45 f8 | mov    -0x8(%rbp),%rax',
      'ffffffff8100001b: 48 b8 01 02 03 04 05 06 07 08 | movabs $0x807060504030201,%rax',
      'ffffffff81000025: 0f b6 c0 | movzbl %al,%eax',
      'ffffffff81000028: eb fe | jmp    0xffffffff81000028',
      'ffffffff8100002a: c3 | ret',
    ]);
  });

  it('stops after max instructions and reports lengths', () => {
    const got = disassemble(Uint8Array.from([0x90, 0x90, 0x66, 0x90, 0xf4]), 0x10n, 32, 3);
    expect(got.map((i) => [i.ip, i.length, i.text])).toEqual([
      [0x10n, 1, 'nop'],
      [0x11n, 1, 'nop'],
      [0x12n, 2, 'xchg   %ax,%ax'],
    ]);
    expect(disassemble(Uint8Array.from([0x90]), 0n, 16, 0)).toEqual([]);
    expect(disassemble(new Uint8Array(0), 0n, 16, 4)).toEqual([]);
  });

  it('ends with (bad) at an invalid opcode, one byte as objdump shows it', () => {
    // 0xff 0xff is no instruction; push %es (0x06) does not exist in 64-bit mode.
    expect(lines([0x0f, 0x0b, 0xff, 0xff, 0xcd, 0x10], 0n, 32)).toEqual(['0: 0f 0b | ud2', `2: ff | ${BAD_INSTRUCTION}`]);
    expect(lines([0x06, 0x90], 0n, 64)).toEqual([`0: 06 | (bad)`]);
    expect(lines([0x06, 0x90], 0n, 32)).toEqual(['0: 06 | push   %es', '1: 90 | nop']);
  });

  it('leaves out an instruction cut off by the end of the bytes', () => {
    // mov $imm32,%eax needs 5 bytes; only 3 are there.
    expect(lines([0x90, 0xb8, 0x01, 0x02], 0n, 32)).toEqual(['0: 90 | nop']);
  });
});

describe('bitnessFor', () => {
  it('takes the code size from the mode and CS.L / CS.D', () => {
    expect(bitnessFor('real', 0, 0)).toBe(16);
    expect(bitnessFor('real', 1, 0)).toBe(16);
    expect(bitnessFor('protected', 1, 0)).toBe(32);
    expect(bitnessFor('protected', 0, 0)).toBe(16);
    expect(bitnessFor('long', 0, 1)).toBe(64);
    // Compatibility mode: a long-mode CPU running a 32- or 16-bit code segment.
    expect(bitnessFor('long', 1, 0)).toBe(32);
    expect(bitnessFor('long', 0, 0)).toBe(16);
  });
});
