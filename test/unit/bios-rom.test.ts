/**
 * The BIOS ROM as machine code: the fixed entry points of the AT layout, each trap stub's two
 * instructions, the common trap path, and (with binutils) the whole ROM through objdump, so the
 * bytes say what the named opcodes meant.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Asm16 } from '../../src/bios/asm.js';
import {
  BIOS_TRAP_PORT,
  FRAME_STATUS_OFFSET,
  FRAME_STATUS_WAIT,
  ROM_INT08,
  ROM_INT09,
  ROM_INT10,
  ROM_INT13,
  ROM_INT16,
  ROM_INT19,
  ROM_IRET,
  ROM_OFFSET,
  ROM_POST,
  ROM_RESET,
  ROM_SIZE,
} from '../../src/bios/layout.js';
import { buildBiosRom, TRAPPED_VECTORS } from '../../src/bios/rom.js';
import { haveBinutils } from './helpers.js';

const rom = buildBiosRom();
const at = (offset: number): number => rom.bytes[offset - ROM_OFFSET]!;
const word = (offset: number): number => at(offset) | (at(offset + 1) << 8);
/** Where a near jump at `offset` (E9 rel16) lands. */
const nearTarget = (offset: number): number => (offset + 3 + ((word(offset + 1) << 16) >> 16)) & 0xffff;

function objdump(bytes: Uint8Array, vma: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'tskvm-rom-'));
  try {
    const file = join(dir, 'rom.bin');
    writeFileSync(file, bytes);
    return execFileSync('objdump', ['-D', '-b', 'binary', '-mi8086', '-M', 'intel', `--adjust-vma=0x${vma.toString(16)}`, file], {
      encoding: 'utf8',
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('BIOS ROM', () => {
  it('fills F000:E000-F000:FFFF with the reset vector far-jumping to POST at F000:E05B', () => {
    expect(rom.bytes.length).toBe(ROM_SIZE);
    expect([...rom.bytes.subarray(ROM_RESET - ROM_OFFSET, ROM_RESET - ROM_OFFSET + 5)]).toEqual([0xea, 0x5b, 0xe0, 0x00, 0xf0]);
    expect(rom.post).toBe(ROM_POST);
    expect(at(0xfffe)).toBe(0xfc); // the AT's model byte
  });

  it('puts the services at their AT entry points: a stub pushing the vector and jumping to the common trap', () => {
    expect(rom.vectors.get(0x10)).toBe(ROM_INT10);
    expect(rom.vectors.get(0x16)).toBe(ROM_INT16);
    expect(rom.vectors.get(0x08)).toBe(ROM_INT08);
    const common = nearTarget(ROM_INT10 + 3);
    for (const vector of TRAPPED_VECTORS) {
      let entry = rom.vectors.get(vector)!;
      if (at(entry) === 0xe9) entry = nearTarget(entry); // INT 13h/19h: the AT leaves 3 bytes there
      expect(at(entry), `vector ${vector.toString(16)}`).toBe(0x68); // push imm16
      expect(word(entry + 1)).toBe(vector);
      expect(at(entry + 3)).toBe(0xe9);
      if (vector !== 0x09) expect(nearTarget(entry + 3)).toBe(common);
    }
    expect(at(ROM_INT13)).toBe(0xe9);
    expect(at(ROM_INT19)).toBe(0xe9);
    expect(at(ROM_IRET)).toBe(0xcf);
  });

  it('traps with one out dx, eax of SS:SP, waits with sti; hlt while the VMM says so, and pops in reverse', () => {
    const common = nearTarget(ROM_INT10 + 3) - ROM_OFFSET;
    const code = [...rom.bytes.subarray(common, common + 40)];
    const expected = [
      0x66,
      0x60,
      0x1e,
      0x06,
      0x89,
      0xe5, // pushad; push ds; push es; mov bp, sp
      0x8c,
      0xd0,
      0x66,
      0xc1,
      0xe0,
      0x10,
      0x89,
      0xe0, // mov ax, ss; shl eax, 16; mov ax, sp
      0xba,
      BIOS_TRAP_PORT & 0xff,
      BIOS_TRAP_PORT >> 8,
      0x66,
      0xef, // mov dx, PORT; out dx, eax
      0xf6,
      0x46,
      FRAME_STATUS_OFFSET,
      FRAME_STATUS_WAIT,
      0x74,
      0x05, // test byte [bp+37], 80h; jz done
      0xfb,
      0xf4,
      0xfa,
      0xeb,
      0xe8, // sti; hlt; cli; jmp retry
      0x07,
      0x1f,
      0x66,
      0x61,
      0x83,
      0xc4,
      0x02,
      0xcf, // pop es; pop ds; popad; add sp, 2; iret
    ];
    expect(code.slice(0, expected.length)).toEqual(expected);
    // The keyboard interrupt's stub ends in an EOI to the master PIC instead of waiting.
    const irq = nearTarget(ROM_INT09 + 3) - ROM_OFFSET;
    expect([...rom.bytes.subarray(irq + 17, irq + 21)]).toEqual([0xb0, 0x20, 0xe6, 0x20]);
  });

  it.skipIf(!haveBinutils())('disassembles (objdump -mi8086) to the instructions it was assembled from', () => {
    /** objdump of `length` bytes from segment offset `offset` (code only: padding would desync it). */
    const dis = (offset: number, length: number): string =>
      objdump(rom.bytes.subarray(offset - ROM_OFFSET, offset - ROM_OFFSET + length), offset);
    expect(dis(ROM_INT10, 6)).toMatch(/push\s+0x10\n.*jmp\s+0x[0-9a-f]+/);
    const post = dis(ROM_POST, 80);
    expect(post).toMatch(/cli/);
    expect(post).toMatch(/mov\s+sp,0x7c00/);
    expect(post).toMatch(/out\s+0x43,al/);
    expect(post).toMatch(/int\s+0x19\n.*int\s+0x18/);
    const common = nearTarget(ROM_INT10 + 3);
    const trap = dis(common, 38);
    expect(trap).toMatch(/pushad\n.*push\s+ds\n.*push\s+es\n.*mov\s+bp,sp/);
    expect(trap).toMatch(/mov\s+dx,0xb105\n.*out\s+dx,eax/);
    expect(trap).toMatch(/test\s+BYTE PTR \[bp\+0x25\],0x80/);
    expect(trap).toMatch(/sti\n.*hlt\n.*cli/);
    expect(trap).toMatch(/popad\n.*add\s+sp,0x2\n.*iret/);
    const timer = dis(ROM_INT08, 63);
    expect(timer).toMatch(/inc\s+DWORD PTR ds:0x46c/);
    expect(timer).toMatch(/cmp\s+DWORD PTR ds:0x46c,0x1800b0/);
    expect(timer).toMatch(/int\s+0x1c\n.*mov\s+al,0x20\n.*out\s+0x20,al/);
    expect(dis(ROM_RESET, 5)).toMatch(/jmp\s+0xf000:0xe05b/);
  });
});

describe('Asm16', () => {
  it('resolves short and near jumps in both directions and refuses to overflow a fixed offset', () => {
    const a = new Asm16(0x100);
    a.label('top').jmpShort('end').jmpNear('top').label('end').hlt();
    expect([...a.assemble()]).toEqual([0xeb, 0x03, 0xe9, 0xfb, 0xff, 0xf4]);
    const b = new Asm16(0);
    b.bytes(1, 2, 3);
    expect(() => b.org(2)).toThrow(/ROM overflow/);
    const far = new Asm16(0);
    far.jz('x').org(0x200).label('x');
    expect(() => far.assemble()).toThrow(/out of range/);
  });
});
