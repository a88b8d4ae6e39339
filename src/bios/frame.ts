/**
 * The registers of a BIOS call, as the ROM's trap stub saved them on the caller's stack (see
 * layout.ts for the layout). A service reads its inputs here and writes its results here; the
 * stub's popad/pop/iret then gives the caller exactly these registers and FLAGS. Every access
 * wraps inside the 64 KiB stack segment, as the CPU's own SS:SP arithmetic does.
 */
import {
  FLAGS_CF,
  FLAGS_ZF,
  FRAME_CS,
  FRAME_DS,
  FRAME_EAX,
  FRAME_EBP,
  FRAME_EBX,
  FRAME_ECX,
  FRAME_EDI,
  FRAME_EDX,
  FRAME_ES,
  FRAME_ESI,
  FRAME_FLAGS,
  FRAME_IP,
  FRAME_STATUS_OFFSET,
  FRAME_STATUS_WAIT,
  FRAME_VECTOR,
  FRAME_VECTOR_MASK,
  linear,
} from './layout.js';

const WORD = 0xffff;
const BYTE = 0xff;

export class TrapFrame {
  constructor(
    readonly memory: Uint8Array,
    readonly ss: number,
    readonly sp: number,
  ) {}

  /** The frame as the port write reports it: SS in the high word, SP in the low. */
  static fromTrap(memory: Uint8Array, value: number): TrapFrame {
    return new TrapFrame(memory, (value >>> 16) & WORD, value & WORD);
  }

  /** Guest-physical address of frame byte `offset`. */
  address(offset: number): number {
    return linear(this.ss, this.sp + offset);
  }

  u8(offset: number): number {
    return this.memory[this.address(offset)] ?? BYTE;
  }

  setU8(offset: number, value: number): void {
    const at = this.address(offset);
    if (at < this.memory.length) this.memory[at] = value & BYTE;
  }

  u16(offset: number): number {
    return this.u8(offset) | (this.u8(offset + 1) << 8);
  }

  setU16(offset: number, value: number): void {
    this.setU8(offset, value);
    this.setU8(offset + 1, value >>> 8);
  }

  u32(offset: number): number {
    return (this.u16(offset) | (this.u16(offset + 2) << 16)) >>> 0;
  }

  setU32(offset: number, value: number): void {
    this.setU16(offset, value & WORD);
    this.setU16(offset + 2, value >>> 16);
  }

  get vector(): number {
    return this.u8(FRAME_VECTOR) & FRAME_VECTOR_MASK;
  }

  /** Ask the stub to wait (`sti; hlt`) and trap again, or say the service is done. */
  set waiting(wait: boolean) {
    this.setU8(FRAME_STATUS_OFFSET, wait ? FRAME_STATUS_WAIT : 0);
  }

  get waiting(): boolean {
    return (this.u8(FRAME_STATUS_OFFSET) & FRAME_STATUS_WAIT) !== 0;
  }

  // 32-bit registers.
  get eax(): number {
    return this.u32(FRAME_EAX);
  }
  set eax(v: number) {
    this.setU32(FRAME_EAX, v);
  }
  get ebx(): number {
    return this.u32(FRAME_EBX);
  }
  set ebx(v: number) {
    this.setU32(FRAME_EBX, v);
  }
  get ecx(): number {
    return this.u32(FRAME_ECX);
  }
  set ecx(v: number) {
    this.setU32(FRAME_ECX, v);
  }
  get edx(): number {
    return this.u32(FRAME_EDX);
  }
  set edx(v: number) {
    this.setU32(FRAME_EDX, v);
  }
  get esi(): number {
    return this.u32(FRAME_ESI);
  }
  set esi(v: number) {
    this.setU32(FRAME_ESI, v);
  }
  get edi(): number {
    return this.u32(FRAME_EDI);
  }
  set edi(v: number) {
    this.setU32(FRAME_EDI, v);
  }
  get ebp(): number {
    return this.u32(FRAME_EBP);
  }
  set ebp(v: number) {
    this.setU32(FRAME_EBP, v);
  }

  // 16-bit registers.
  get ax(): number {
    return this.u16(FRAME_EAX);
  }
  set ax(v: number) {
    this.setU16(FRAME_EAX, v);
  }
  get bx(): number {
    return this.u16(FRAME_EBX);
  }
  set bx(v: number) {
    this.setU16(FRAME_EBX, v);
  }
  get cx(): number {
    return this.u16(FRAME_ECX);
  }
  set cx(v: number) {
    this.setU16(FRAME_ECX, v);
  }
  get dx(): number {
    return this.u16(FRAME_EDX);
  }
  set dx(v: number) {
    this.setU16(FRAME_EDX, v);
  }
  get si(): number {
    return this.u16(FRAME_ESI);
  }
  set si(v: number) {
    this.setU16(FRAME_ESI, v);
  }
  get di(): number {
    return this.u16(FRAME_EDI);
  }
  set di(v: number) {
    this.setU16(FRAME_EDI, v);
  }
  get bp(): number {
    return this.u16(FRAME_EBP);
  }
  set bp(v: number) {
    this.setU16(FRAME_EBP, v);
  }
  get ds(): number {
    return this.u16(FRAME_DS);
  }
  set ds(v: number) {
    this.setU16(FRAME_DS, v);
  }
  get es(): number {
    return this.u16(FRAME_ES);
  }
  set es(v: number) {
    this.setU16(FRAME_ES, v);
  }

  // 8-bit halves.
  get al(): number {
    return this.u8(FRAME_EAX);
  }
  set al(v: number) {
    this.setU8(FRAME_EAX, v);
  }
  get ah(): number {
    return this.u8(FRAME_EAX + 1);
  }
  set ah(v: number) {
    this.setU8(FRAME_EAX + 1, v);
  }
  get bl(): number {
    return this.u8(FRAME_EBX);
  }
  set bl(v: number) {
    this.setU8(FRAME_EBX, v);
  }
  get bh(): number {
    return this.u8(FRAME_EBX + 1);
  }
  set bh(v: number) {
    this.setU8(FRAME_EBX + 1, v);
  }
  get cl(): number {
    return this.u8(FRAME_ECX);
  }
  set cl(v: number) {
    this.setU8(FRAME_ECX, v);
  }
  get ch(): number {
    return this.u8(FRAME_ECX + 1);
  }
  set ch(v: number) {
    this.setU8(FRAME_ECX + 1, v);
  }
  get dl(): number {
    return this.u8(FRAME_EDX);
  }
  set dl(v: number) {
    this.setU8(FRAME_EDX, v);
  }
  get dh(): number {
    return this.u8(FRAME_EDX + 1);
  }
  set dh(v: number) {
    this.setU8(FRAME_EDX + 1, v);
  }

  // The INT's return address and FLAGS (the iret frame under the saved registers).
  get ip(): number {
    return this.u16(FRAME_IP);
  }
  set ip(v: number) {
    this.setU16(FRAME_IP, v);
  }
  get cs(): number {
    return this.u16(FRAME_CS);
  }
  set cs(v: number) {
    this.setU16(FRAME_CS, v);
  }
  get flags(): number {
    return this.u16(FRAME_FLAGS);
  }
  set flags(v: number) {
    this.setU16(FRAME_FLAGS, v);
  }

  /** CF in the FLAGS the caller gets back (the BIOS's error flag). */
  set carry(on: boolean) {
    this.flags = on ? this.flags | FLAGS_CF : this.flags & ~FLAGS_CF;
  }

  get carry(): boolean {
    return (this.flags & FLAGS_CF) !== 0;
  }

  /** ZF in the FLAGS the caller gets back (INT 16h AH=01h: set when no key waits). */
  set zero(on: boolean) {
    this.flags = on ? this.flags | FLAGS_ZF : this.flags & ~FLAGS_ZF;
  }

  get zero(): boolean {
    return (this.flags & FLAGS_ZF) !== 0;
  }

  /** Success: CF clear and AH = 0, the way most BIOS services report it. */
  ok(): void {
    this.ah = 0;
    this.carry = false;
  }

  /** Failure with status `code` in AH and CF set. */
  fail(code: number): void {
    this.ah = code;
    this.carry = true;
  }
}
