/**
 * A tiny 16-bit x86 assembler for the BIOS ROM: the few instructions the stubs need, each emitted
 * from its named opcode, with labels and short/near jump fix-ups. Writing the ROM in TypeScript
 * keeps the BIOS one program (no assembler at build time) and lets the tests disassemble it.
 */

// Opcodes (Intel SDM vol. 2), real mode: operands are 16-bit unless prefixed with 0x66.
export const OP_OPERAND_SIZE = 0x66;
export const OP_PUSH_ES = 0x06;
export const OP_POP_ES = 0x07;
export const OP_PUSH_DS = 0x1e;
export const OP_POP_DS = 0x1f;
export const OP_PUSH_AX = 0x50;
export const OP_PUSH_DX = 0x52;
export const OP_POP_AX = 0x58;
export const OP_POP_DX = 0x5a;
export const OP_PUSHA = 0x60; // pushad with 0x66
export const OP_POPA = 0x61;
export const OP_PUSH_IMM16 = 0x68;
export const OP_JB_REL8 = 0x72;
export const OP_JNB_REL8 = 0x73;
export const OP_JZ_REL8 = 0x74;
export const OP_JNZ_REL8 = 0x75;
export const OP_GRP1_RM8_IMM8 = 0x80;
export const OP_GRP1_RM16_IMM16 = 0x81;
export const OP_GRP1_RM16_IMM8 = 0x83;
export const OP_MOV_RM16_R16 = 0x89;
export const OP_MOV_R16_RM16 = 0x8b;
export const OP_MOV_RM16_SREG = 0x8c;
export const OP_MOV_SREG_RM16 = 0x8e;
export const OP_MOV_AL_IMM8 = 0xb0;
export const OP_MOV_AH_IMM8 = 0xb4;
export const OP_MOV_AX_IMM16 = 0xb8;
export const OP_MOV_DX_IMM16 = 0xba;
export const OP_MOV_SP_IMM16 = 0xbc;
export const OP_GRP2_RM_IMM8 = 0xc1;
export const OP_MOV_RM8_IMM8 = 0xc6;
export const OP_MOV_RM16_IMM16 = 0xc7;
export const OP_INT_IMM8 = 0xcd;
export const OP_IRET = 0xcf;
export const OP_IN_AL_IMM8 = 0xe4;
export const OP_OUT_IMM8_AL = 0xe6;
export const OP_JMP_REL16 = 0xe9;
export const OP_JMP_FAR = 0xea;
export const OP_JMP_REL8 = 0xeb;
export const OP_OUT_DX_AX = 0xef; // out dx, eax with 0x66
export const OP_HLT = 0xf4;
export const OP_GRP3_RM8 = 0xf6;
export const OP_CLC = 0xf8;
export const OP_STC = 0xf9;
export const OP_CLI = 0xfa;
export const OP_STI = 0xfb;
export const OP_CLD = 0xfc;
export const OP_GRP4_RM8 = 0xfe;
export const OP_GRP5_RM16 = 0xff;
export const OP_XOR_RM16_R16 = 0x31;

// ModR/M: mod (2 bits) reg (3) rm (3).
const MOD_DISP8 = 0x40;
const MOD_REG = 0xc0;
const RM_BP_DISP = 0x06; // [bp+disp] with mod 01/10
const RM_DIRECT = 0x06; // [disp16] with mod 00
export const REG_AX = 0;
export const REG_DX = 2;
export const REG_SP = 4;
export const REG_BP = 5;
export const SREG_ES = 0;
export const SREG_SS = 2;
export const SREG_DS = 3;
// Group opcode extensions (the reg field).
const GRP1_ADD = 0;
const GRP1_AND = 4;
const GRP1_CMP = 7;
const GRP2_SHL = 4;
const GRP3_TEST = 0;
const GRP4_INC = 0;
const GRP4_DEC = 1;
const GRP5_INC = 0;

const modrm = (mod: number, reg: number, rm: number): number => mod | (reg << 3) | rm;
const BYTE = 0xff;

type Fixup = { at: number; label: string; kind: 'rel8' | 'rel16' };

/** Assembles into a fixed window of a segment: `base` is the offset of the first byte. */
export class Asm16 {
  private readonly code: number[] = [];
  private readonly labels = new Map<string, number>();
  private readonly fixups: Fixup[] = [];

  constructor(readonly base: number) {}

  /** The segment offset the next byte lands at. */
  get here(): number {
    return this.base + this.code.length;
  }

  /** Pads with `fill` up to segment offset `offset` (a fixed entry point); refuses to go back. */
  org(offset: number, fill = 0xff): this {
    if (offset < this.here)
      throw new Error(`ROM overflow: code reaches 0x${this.here.toString(16)}, past the fixed offset 0x${offset.toString(16)}`);
    while (this.here < offset) this.code.push(fill);
    return this;
  }

  label(name: string): this {
    if (this.labels.has(name)) throw new Error(`label ${name} defined twice`);
    this.labels.set(name, this.here);
    return this;
  }

  /** The offset of a label defined so far. */
  address(name: string): number {
    const at = this.labels.get(name);
    if (at === undefined) throw new Error(`label ${name} is not defined`);
    return at;
  }

  bytes(...values: number[]): this {
    for (const v of values) this.code.push(v & BYTE);
    return this;
  }

  word(value: number): this {
    return this.bytes(value, value >>> 8);
  }

  dword(value: number): this {
    return this.word(value & 0xffff).word(value >>> 16);
  }

  zeros(count: number): this {
    for (let i = 0; i < count; i++) this.code.push(0);
    return this;
  }

  ascii(text: string): this {
    for (const ch of text) this.code.push(ch.charCodeAt(0) & BYTE);
    return this;
  }

  // --- instructions ---
  cli = (): this => this.bytes(OP_CLI);
  sti = (): this => this.bytes(OP_STI);
  cld = (): this => this.bytes(OP_CLD);
  hlt = (): this => this.bytes(OP_HLT);
  stc = (): this => this.bytes(OP_STC);
  clc = (): this => this.bytes(OP_CLC);
  iret = (): this => this.bytes(OP_IRET);
  pushad = (): this => this.bytes(OP_OPERAND_SIZE, OP_PUSHA);
  popad = (): this => this.bytes(OP_OPERAND_SIZE, OP_POPA);
  pushDs = (): this => this.bytes(OP_PUSH_DS);
  pushEs = (): this => this.bytes(OP_PUSH_ES);
  popDs = (): this => this.bytes(OP_POP_DS);
  popEs = (): this => this.bytes(OP_POP_ES);
  pushAx = (): this => this.bytes(OP_PUSH_AX);
  popAx = (): this => this.bytes(OP_POP_AX);
  pushDx = (): this => this.bytes(OP_PUSH_DX);
  popDx = (): this => this.bytes(OP_POP_DX);
  pushImm16 = (value: number): this => this.bytes(OP_PUSH_IMM16).word(value);
  int = (vector: number): this => this.bytes(OP_INT_IMM8, vector);
  movAlImm = (value: number): this => this.bytes(OP_MOV_AL_IMM8, value);
  movAhImm = (value: number): this => this.bytes(OP_MOV_AH_IMM8, value);
  movAxImm = (value: number): this => this.bytes(OP_MOV_AX_IMM16).word(value);
  movDxImm = (value: number): this => this.bytes(OP_MOV_DX_IMM16).word(value);
  movSpImm = (value: number): this => this.bytes(OP_MOV_SP_IMM16).word(value);
  xorAxAx = (): this => this.bytes(OP_XOR_RM16_R16, modrm(MOD_REG, REG_AX, REG_AX));
  /** mov ax, <sreg> */
  movAxFromSreg = (sreg: number): this => this.bytes(OP_MOV_RM16_SREG, modrm(MOD_REG, sreg, REG_AX));
  /** mov <sreg>, ax */
  movSregFromAx = (sreg: number): this => this.bytes(OP_MOV_SREG_RM16, modrm(MOD_REG, sreg, REG_AX));
  movAxSp = (): this => this.bytes(OP_MOV_RM16_R16, modrm(MOD_REG, REG_SP, REG_AX));
  movBpSp = (): this => this.bytes(OP_MOV_RM16_R16, modrm(MOD_REG, REG_SP, REG_BP));
  /** shl eax, imm8 */
  shlEaxImm = (count: number): this => this.bytes(OP_OPERAND_SIZE, OP_GRP2_RM_IMM8, modrm(MOD_REG, GRP2_SHL, REG_AX), count);
  /** out dx, eax */
  outDxEax = (): this => this.bytes(OP_OPERAND_SIZE, OP_OUT_DX_AX);
  outImmAl = (port: number): this => this.bytes(OP_OUT_IMM8_AL, port);
  inAlImm = (port: number): this => this.bytes(OP_IN_AL_IMM8, port);
  addSpImm8 = (value: number): this => this.bytes(OP_GRP1_RM16_IMM8, modrm(MOD_REG, GRP1_ADD, REG_SP), value);
  /** test byte [bp+disp8], imm8 */
  testBytePtrBp = (disp: number, value: number): this => this.bytes(OP_GRP3_RM8, modrm(MOD_DISP8, GRP3_TEST, RM_BP_DISP), disp, value);
  /** inc dword [disp16] (DS) */
  incDwordMem = (address: number): this => this.bytes(OP_OPERAND_SIZE, OP_GRP5_RM16, modrm(0, GRP5_INC, RM_DIRECT)).word(address);
  /** cmp dword [disp16], imm32 */
  cmpDwordMemImm = (address: number, value: number): this =>
    this.bytes(OP_OPERAND_SIZE, OP_GRP1_RM16_IMM16, modrm(0, GRP1_CMP, RM_DIRECT))
      .word(address)
      .dword(value);
  /** mov dword [disp16], imm32 */
  movDwordMemImm = (address: number, value: number): this =>
    this.bytes(OP_OPERAND_SIZE, OP_MOV_RM16_IMM16, modrm(0, 0, RM_DIRECT))
      .word(address)
      .dword(value);
  /** inc byte [disp16] */
  incByteMem = (address: number): this => this.bytes(OP_GRP4_RM8, modrm(0, GRP4_INC, RM_DIRECT)).word(address);
  /** dec byte [disp16] */
  decByteMem = (address: number): this => this.bytes(OP_GRP4_RM8, modrm(0, GRP4_DEC, RM_DIRECT)).word(address);
  /** cmp byte [disp16], imm8 */
  cmpByteMemImm = (address: number, value: number): this =>
    this.bytes(OP_GRP1_RM8_IMM8, modrm(0, GRP1_CMP, RM_DIRECT))
      .word(address)
      .bytes(value);
  /** mov byte [disp16], imm8 */
  movByteMemImm = (address: number, value: number): this =>
    this.bytes(OP_MOV_RM8_IMM8, modrm(0, 0, RM_DIRECT))
      .word(address)
      .bytes(value);
  /** and byte [disp16], imm8 */
  andByteMemImm = (address: number, value: number): this =>
    this.bytes(OP_GRP1_RM8_IMM8, modrm(0, GRP1_AND, RM_DIRECT))
      .word(address)
      .bytes(value);

  jz = (label: string): this => this.rel8(OP_JZ_REL8, label);
  jnz = (label: string): this => this.rel8(OP_JNZ_REL8, label);
  jb = (label: string): this => this.rel8(OP_JB_REL8, label);
  jnb = (label: string): this => this.rel8(OP_JNB_REL8, label);
  jmpShort = (label: string): this => this.rel8(OP_JMP_REL8, label);
  jmpNear = (label: string): this => {
    this.code.push(OP_JMP_REL16);
    this.fixups.push({ at: this.code.length, label, kind: 'rel16' });
    return this.word(0);
  };
  jmpFar = (segment: number, offset: number): this => this.bytes(OP_JMP_FAR).word(offset).word(segment);

  private rel8(opcode: number, label: string): this {
    this.code.push(opcode);
    this.fixups.push({ at: this.code.length, label, kind: 'rel8' });
    return this.bytes(0);
  }

  /** Resolves the jumps and returns the bytes, from `base` to the last byte emitted. */
  assemble(): Uint8Array {
    const out = Uint8Array.from(this.code);
    for (const fix of this.fixups) {
      const target = this.address(fix.label);
      const next = this.base + fix.at + (fix.kind === 'rel8' ? 1 : 2);
      const rel = target - next;
      if (fix.kind === 'rel8') {
        if (rel < -128 || rel > 127) throw new Error(`short jump to ${fix.label} out of range (${rel})`);
        out[fix.at] = rel & BYTE;
      } else {
        out[fix.at] = rel & BYTE;
        out[fix.at + 1] = (rel >>> 8) & BYTE;
      }
    }
    return out;
  }
}
