/**
 * `--step`: one line per instruction executed, with the registers it changed:
 *
 *     <cs:ip>  <bytes, padded to 21><AT&T text, padded to 31> ; <reg>=0x<before>→0x<after> ...
 *
 *     1000:0001  be 2a 00             mov    $0x2a,%si                ; rsi=0x0→0x2a
 *     1000:0005  84 c0                test   %al,%al                  ; rflags=0x3→0x46 (-CF +PF +ZF)
 *     1000:0007  74 12                je     0x1b                     ; rip=0x7→0x1b
 *     1000:0009  88 c4                mov    %al,%ah
 *
 * `cs:ip` is `1000:0004` for 16-bit code, `0008:00100000` for 32-bit, `0018:ffffffff81000000`
 * for 64-bit. RIP is listed only when the instruction did not fall through to the next one (a
 * taken branch, an interrupt or exception); RFLAGS lists the flags set (+) and cleared (-).
 * Registers in KVM_REGS_FIELDS order; nothing after the text when nothing changed.
 */
import type { KvmRegs } from '../kvm/structs.js';
import { KVM_REGS_FIELDS } from '../kvm/structs.js';
import { RFLAGS_BITS, RFLAGS_IOPL_MASK, RFLAGS_IOPL_SHIFT, formatAddress, type CpuMode } from './register-dump.js';

/** The instruction executed: what disassemble() returns for the bytes at the old CS:RIP. */
export interface StepInstruction {
  ip: bigint;
  /** Hex pairs separated by spaces, as disassemble() gives them. */
  bytes: string;
  text: string;
}

const BYTES_COLUMN = 21;
const TEXT_COLUMN = 31;
const UNDECODED = '(not decoded)';

/**
 * One line for one step. `prev` are the registers before the instruction (undefined for the first
 * line, which then lists no changes), `regs` after it; `insn`, `csSelector` and `mode` describe
 * the instruction executed, read before it ran.
 */
export function formatStep(
  prev: KvmRegs | undefined,
  regs: KvmRegs,
  insn: StepInstruction | undefined,
  csSelector: number,
  mode: CpuMode,
): string {
  const ip = insn?.ip ?? prev?.rip ?? regs.rip;
  // A long instruction (up to 15 bytes) pushes the text right rather than running into it.
  const head = `${formatAddress(ip, csSelector, mode)}  ${`${insn?.bytes ?? ''} `.padEnd(BYTES_COLUMN)}`;
  const text = insn?.text ?? UNDECODED;
  const changes = prev ? changedRegisters(prev, regs, insn) : [];
  return changes.length ? `${head}${text.padEnd(TEXT_COLUMN)} ; ${changes.join(' ')}` : `${head}${text}`;
}

function changedRegisters(prev: KvmRegs, regs: KvmRegs, insn: StepInstruction | undefined): string[] {
  const out: string[] = [];
  for (const name of KVM_REGS_FIELDS) {
    const before = prev[name];
    const after = regs[name];
    if (name === 'rip') {
      // Falling through to the next instruction is what every instruction does: not news.
      if (insn && after === insn.ip + BigInt(byteCount(insn.bytes))) continue;
      if (!insn && after === before) continue;
    } else if (before === after) {
      continue;
    }
    const change = `${name}=0x${before.toString(16)}→0x${after.toString(16)}`;
    const flags = name === 'rflags' ? flagChanges(before, after) : '';
    out.push(flags ? `${change} (${flags})` : change);
  }
  return out;
}

const byteCount = (bytes: string): number => (bytes.trim() ? bytes.trim().split(/\s+/).length : 0);

/** `+ZF -CF`: the named flags that were set and cleared. */
export function flagChanges(before: bigint, after: bigint): string {
  const changes: string[] = [];
  for (const [bit, name] of RFLAGS_BITS) {
    const mask = 1n << BigInt(bit);
    if ((before & mask) !== (after & mask)) changes.push(`${after & mask ? '+' : '-'}${name}`);
  }
  const iopl = (v: bigint): bigint => (v >> RFLAGS_IOPL_SHIFT) & RFLAGS_IOPL_MASK;
  if (iopl(before) !== iopl(after)) changes.push(`IOPL=${iopl(after)}`);
  return changes.join(' ');
}
