import { describe, expect, it } from 'vitest';
import type { KvmRegs, KvmSegment, KvmSregs } from '../../src/kvm/structs.js';
import { CR0_PE, CR0_PG, EFER_LMA, KVM_REGS_FIELDS } from '../../src/kvm/structs.js';
import { bitNames, CR0_BITS, cpuMode, formatAddress, formatRflags, formatVcpuState } from '../../src/debug/register-dump.js';

const codeLine = (text: string): string | undefined => text.split('\n').find((l) => l.startsWith('Code at'));
const disasmLines = (text: string): string[] => text.split('\n').slice(text.split('\n').findIndex((l) => l.startsWith('Code at')) + 1);

function regs(overrides: Partial<KvmRegs> = {}): KvmRegs {
  const r = {} as KvmRegs;
  for (const name of KVM_REGS_FIELDS) r[name] = 0n;
  r.rflags = 2n;
  return Object.assign(r, overrides);
}

function seg(selector: number, overrides: Partial<KvmSegment> = {}): KvmSegment {
  return {
    base: BigInt(selector) << 4n,
    limit: 0xffff,
    selector,
    type: 3,
    present: 1,
    dpl: 0,
    db: 0,
    s: 1,
    l: 0,
    g: 0,
    avl: 0,
    unusable: 0,
    ...overrides,
  };
}

function realSregs(cs = 0x1000): KvmSregs {
  return {
    cs: seg(cs, { type: 0xb }),
    ds: seg(0x1000),
    es: seg(0x1000),
    fs: seg(0x1000),
    gs: seg(0x1000),
    ss: seg(0x1000),
    tr: seg(0, { type: 0xb, s: 0 }),
    ldt: seg(0, { type: 2, s: 0, unusable: 1 }),
    gdt: { base: 0n, limit: 0xffff },
    idt: { base: 0n, limit: 0x3ff },
    cr0: 0x60000010n,
    cr2: 0n,
    cr3: 0n,
    cr4: 0n,
    cr8: 0n,
    efer: 0n,
    apicBase: 0xfee00900n,
    interruptBitmap: [0n, 0n, 0n, 0n],
  };
}

describe('cpuMode', () => {
  it('names real, protected and long mode', () => {
    expect(CR0_PE).toBe(1n);
    expect(CR0_PG).toBe(0x80000000n);
    expect(EFER_LMA).toBe(0x400n);
    const s = realSregs();
    expect(cpuMode(s)).toBe('real');
    expect(cpuMode({ ...s, cr0: 0x11n })).toBe('protected');
    expect(cpuMode({ ...s, cr0: 0x80000011n })).toBe('protected');
    expect(cpuMode({ ...s, cr0: 0x80000011n, efer: 0x500n })).toBe('long');
    // LME without LMA is not yet long mode.
    expect(cpuMode({ ...s, cr0: 0x11n, efer: 0x100n })).toBe('protected');
  });
});

describe('formatVcpuState', () => {
  it('shows the registers, segments, control registers and the code at CS:IP', () => {
    const memory = new Uint8Array(0x20000);
    const code = [0xb8, 0x34, 0x12, 0xe6, 0xf4, 0xf4, 0xeb, 0xfe, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0xcc, 0xcc];
    memory.set(code, 0x10005);
    const text = formatVcpuState(regs({ rax: 0x1234n, rbx: 0xfedcba9876543210n, rsp: 0x8000n, rip: 5n, r15: 0xfn }), realSregs(), memory);
    const lines = text.split('\n');
    expect(lines[0]).toBe('RAX=0000000000001234 RBX=fedcba9876543210 RCX=0000000000000000 RDX=0000000000000000');
    expect(text).toContain('RSP=0000000000008000');
    expect(text).toContain('R15=000000000000000f');
    expect(text).toContain('RIP=0000000000000005 RFL=00000002 mode=real');
    expect(text).toContain('CS  =1000 base=0000000000010000 limit=0000ffff type=b s=1 dpl=0 p=1 db=0 l=0 g=0 avl=0');
    expect(text).toContain('SS  =1000 base=0000000000010000 limit=0000ffff');
    expect(text).toContain('LDT =0000 base=0000000000000000 limit=0000ffff type=2 s=0 dpl=0 p=1 db=0 l=0 g=0 avl=0 unusable');
    for (const name of ['CS ', 'DS ', 'ES ', 'FS ', 'GS ', 'SS ', 'TR ', 'LDT']) {
      expect(
        lines.some((l) => l.startsWith(`${name} =`)),
        name,
      ).toBe(true);
    }
    expect(text).toContain('GDT=0000000000000000 ffff  IDT=0000000000000000 03ff');
    expect(text).toContain('CR0=60000010 CR2=0000000000000000 CR3=0000000000000000 CR4=00000000');
    expect(text).toContain('EFER=0000000000000000 APIC_BASE=fee00900');
    expect(text).toContain('FLAGS: -');
    expect(text).toContain('CR0: ET NW CD  CR4: -  EFER: -');
    // 16 bytes from 0x10000 + 5, then the next four instructions.
    expect(codeLine(text)).toBe('Code at 10005: b8 34 12 e6 f4 f4 eb fe 90 90 90 90 90 90 90 90');
    expect(disasmLines(text)).toEqual([
      '  1000:0005  b8 34 12             mov    $0x1234,%ax',
      '  1000:0008  e6 f4                out    %al,$0xf4',
      '  1000:000a  f4                   hlt',
      '  1000:000b  eb fe                jmp    0xb',
    ]);
  });

  it('shows the boot-sector entry in real mode at 0000:7C00', () => {
    const memory = new Uint8Array(0x8000);
    memory.set([0xfa, 0x31, 0xc0], 0x7c00);
    const text = formatVcpuState(regs({ rip: 0x7c00n }), realSregs(0), memory);
    expect(text).toContain('Code at 7c00: fa 31 c0 00');
  });

  it('shows fewer bytes when the code runs up to the end of guest RAM', () => {
    const memory = new Uint8Array(0x10004);
    memory.set([0x0f, 0x0b, 0xf4, 0xf4], 0x10000);
    const text = formatVcpuState(regs({ rip: 1n }), realSregs(), memory);
    expect(codeLine(text)).toBe('Code at 10001: 0b f4 f4');
    // 0f 0b is ud2 from 10000; from 10001 the bytes are `or %sp,%si`, then a lone f4 ... (hlt).
    expect(disasmLines(text)).toEqual(['  1000:0001  0b f4                or     %sp,%si', '  1000:0003  f4                   hlt']);
  });

  it('says when CS:IP is outside guest RAM', () => {
    const memory = new Uint8Array(0x10000);
    const text = formatVcpuState(regs({ rip: 0x10n }), realSregs(), memory);
    expect(text.split('\n').at(-1)).toBe('Code at 10010: outside guest RAM');
    const reset = formatVcpuState(regs({ rip: 0xfff0n }), realSregs(0xf000), memory);
    // The reset vector FFFF0 lies beyond a 64 KiB guest.
    expect(reset.split('\n').at(-1)).toBe('Code at ffff0: outside guest RAM');
  });

  it('uses the flat base in protected mode and shows the mode', () => {
    const memory = new Uint8Array(0x200000);
    memory.set([0xde, 0xad], 0x100000);
    const s: KvmSregs = { ...realSregs(), cs: seg(8, { base: 0x100000n, limit: 0xffffffff, type: 0xb, db: 1, g: 1 }), cr0: 0x11n };
    const text = formatVcpuState(regs({ rip: 0n }), s, memory);
    expect(text).toContain('mode=protected');
    expect(text).toContain('CS  =0008 base=0000000000100000 limit=ffffffff type=b s=1 dpl=0 p=1 db=1 l=0 g=1 avl=0');
    expect(text).toContain('Code at 100000: de ad 00');
  });

  it('says the code is not translated with paging on and no translate function, and shows long mode', () => {
    const memory = new Uint8Array(0x10000);
    const s: KvmSregs = {
      ...realSregs(),
      cs: seg(0x18, { base: 0n, type: 0xb, l: 1 }),
      cr0: 0x80000011n,
      cr3: 0x1000n,
      cr4: 0x20n,
      efer: 0x500n,
    };
    const text = formatVcpuState(regs({ rip: 0xffffffff81000000n }), s, memory);
    expect(text).toContain('RIP=ffffffff81000000');
    expect(text).toContain('mode=long');
    expect(text).toContain('CR0=80000011');
    expect(text).toContain('CR3=0000000000001000');
    expect(text).toContain('EFER=0000000000000500');
    expect(text).toContain('CR0: PE ET PG  CR4: PAE  EFER: LME LMA');
    expect(text.split('\n').at(-1)).toBe('Code at ffffffff81000000 (virtual): not translated');
  });

  it('finds the code through translate with paging on, page by page, and disassembles 64-bit code', () => {
    const memory = new Uint8Array(0x20000);
    // The virtual page ffffffff81000000 maps to 0x3000, the next one to 0x8000: the code straddles them.
    const pages = new Map([
      [0xffffffff81000000n, 0x3000],
      [0xffffffff81001000n, 0x8000],
    ]);
    const translate = (linear: bigint): number | undefined => {
      const page = pages.get(linear & ~0xfffn);
      return page === undefined ? undefined : page + Number(linear & 0xfffn);
    };
    memory.set([0x48, 0x89, 0xe5], 0x3ffd); // mov %rsp,%rbp
    memory.set([0x0f, 0x22, 0xc0, 0xf4, 0xeb, 0xfe], 0x8000); // mov %rax,%cr0; hlt; jmp .
    const s: KvmSregs = {
      ...realSregs(),
      cs: seg(0x18, { base: 0n, type: 0xb, l: 1 }),
      cr0: 0x80000011n,
      cr3: 0x1000n,
      cr4: 0x20n,
      efer: 0x500n,
    };
    const text = formatVcpuState(regs({ rip: 0xffffffff81000ffdn }), s, memory, translate);
    expect(codeLine(text)).toBe('Code at ffffffff81000ffd (physical 3ffd): 48 89 e5 0f 22 c0 f4 eb fe 00 00 00 00 00 00 00');
    expect(disasmLines(text)).toEqual([
      '  0018:ffffffff81000ffd  48 89 e5             mov    %rsp,%rbp',
      '  0018:ffffffff81001000  0f 22 c0             mov    %rax,%cr0',
      '  0018:ffffffff81001003  f4                   hlt',
      '  0018:ffffffff81001004  eb fe                jmp    0xffffffff81001004',
    ]);
    // The page after the first is unmapped: only what the first page holds.
    pages.delete(0xffffffff81001000n);
    const cut = formatVcpuState(regs({ rip: 0xffffffff81000ffdn }), s, memory, translate);
    expect(codeLine(cut)).toBe('Code at ffffffff81000ffd (physical 3ffd): 48 89 e5');
    expect(disasmLines(cut)).toEqual(['  0018:ffffffff81000ffd  48 89 e5             mov    %rsp,%rbp']);
    // RIP itself unmapped.
    const none = formatVcpuState(regs({ rip: 0x400000n }), s, memory, translate);
    expect(none.split('\n').at(-1)).toBe('Code at 400000 (virtual): not mapped');
  });

  it('disassembles 32-bit code with CS.D set', () => {
    const memory = new Uint8Array(0x200000);
    memory.set([0xb8, 0x02, 0xb0, 0xad, 0x2b, 0xfa, 0xf4], 0x100000);
    const s: KvmSregs = { ...realSregs(), cs: seg(8, { base: 0n, limit: 0xffffffff, type: 0xb, db: 1, g: 1 }), cr0: 0x11n };
    const text = formatVcpuState(regs({ rip: 0x100000n, rflags: 0x246n }), s, memory);
    expect(text).toContain('FLAGS: PF ZF IF');
    expect(disasmLines(text).slice(0, 3)).toEqual([
      '  0008:00100000  b8 02 b0 ad 2b       mov    $0x2badb002,%eax',
      '  0008:00100005  fa                   cli',
      '  0008:00100006  f4                   hlt',
    ]);
  });
});

describe('bit names', () => {
  it('names RFLAGS, CR0, CR4 and EFER bits', () => {
    expect(formatRflags(0x2n)).toBe('-');
    expect(formatRflags(0x8d7n)).toBe('CF PF AF ZF SF OF');
    expect(formatRflags(0x700n)).toBe('TF IF DF');
    expect(formatRflags(0x3202n)).toBe('IF IOPL=3');
    expect(formatRflags(0x1002n)).toBe('IOPL=1');
    expect(formatRflags(0x260000n)).toBe('VM AC ID');
    expect(bitNames(0xe005003bn, CR0_BITS)).toBe('PE MP TS ET NE WP AM NW CD PG');
    // An unnamed bit still shows.
    expect(bitNames(0x80n | 1n, CR0_BITS)).toBe('PE bit7');
    const text = formatVcpuState(regs(), { ...realSregs(), cr0: 0x80050033n, cr4: 0x6a0n, efer: 0xd01n }, new Uint8Array(0));
    expect(text).toContain('CR0: PE MP ET NE WP AM PG  CR4: PAE PGE OSFXSR OSXMMEXCPT  EFER: SCE LME LMA NXE');
  });

  it('formats cs:ip by code size', () => {
    expect(formatAddress(0x4n, 0x1000, 'real')).toBe('1000:0004');
    expect(formatAddress(0x7c00n, 0, 'real')).toBe('0000:7c00');
    expect(formatAddress(0x100000n, 8, 'protected')).toBe('0008:00100000');
    expect(formatAddress(0xffffffff81000000n, 0x18, 'long')).toBe('0018:ffffffff81000000');
    expect(formatAddress(0x1234n, 0x20, 'long', 32)).toBe('0020:00001234');
  });
});
