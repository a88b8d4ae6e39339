/**
 * x86 disassembly for dumps, traces and single-stepping, in GNU as (AT&T) syntax as objdump -d
 * prints it, via iced-x86 (a maintained decoder/formatter, Rust compiled to WASM).
 *
 * Where iced's GAS formatter and objdump differ and no option closes the gap, iced's form stays:
 * `in %dx,%al` (objdump: `in (%dx),%al`), string operands without the implied segment
 * (`lods (%si),%al`; objdump: `lods %ds:(%si),%al`), `lgdt` without objdump's `l` suffix, and
 * `(%rax,%rax)` without a `,1` scale.
 */
import { createRequire } from 'node:module';
import type * as Iced from 'iced-x86';

/**
 * iced-x86 is loaded on first use: its WASM costs ~14 MB of RSS per thread, and every vCPU thread
 * imports this module (for crash dumps) while few of them ever disassemble anything.
 */
let icedModule: typeof Iced | undefined;
function iced(): typeof Iced {
  icedModule ??= createRequire(import.meta.url)('iced-x86') as typeof Iced;
  return icedModule;
}

export interface DisassembledInstruction {
  /** The instruction's address in the decoder's IP space (RIP/EIP/IP, not CS.base + IP). */
  ip: bigint;
  length: number;
  /** The instruction bytes as objdump shows them: lowercase hex pairs separated by spaces. */
  bytes: string;
  /** AT&T syntax, the mnemonic padded to objdump's operand column. */
  text: string;
}

export type Bitness = 16 | 32 | 64;
export type DisasmCpuMode = 'real' | 'protected' | 'long';

/** What objdump prints for bytes that do not form an instruction. */
export const BAD_INSTRUCTION = '(bad)';
/** objdump prints operands from column 7 (`mov    $0x2a,%si`). */
const OBJDUMP_OPERAND_COLUMN = 7;
/** objdump's separator before the `# target` comment of a RIP-relative operand. */
const RIP_COMMENT_GAP = '        ';

let formatter: Iced.Formatter | undefined;

/** One formatter for the process: creating one costs a WASM allocation, and its options never change. */
function gasFormatter(): Iced.Formatter {
  if (formatter) return formatter;
  const f = new (iced().Formatter)(iced().FormatterSyntax.Gas);
  f.uppercaseHex = false;
  f.branchLeadingZeros = false;
  f.smallHexNumbersInDecimal = false; // objdump: `jmp 0x4`, not `jmp 4`
  f.firstOperandCharIndex = OBJDUMP_OPERAND_COLUMN;
  f.showZeroDisplacements = true; // objdump: `nopw 0x0(%rax,%rax)`
  f.ripRelativeAddresses = true; // objdump: `lea 0x10(%rip),%rax  # 0x100017`
  formatter = f;
  return f;
}

const hexBytes = (bytes: Uint8Array): string => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');

/**
 * Decodes up to `max` instructions from `code`, the first at `ip`. An invalid opcode ends the list
 * with a one-byte `(bad)` entry, as objdump shows it; an instruction cut off by the end of `code`
 * ends it without an entry (more bytes might have made it valid).
 */
export function disassemble(code: Uint8Array, ip: bigint, bitness: Bitness, max: number): DisassembledInstruction[] {
  const out: DisassembledInstruction[] = [];
  if (max <= 0 || code.length === 0) return out;
  const f = gasFormatter();
  const { Decoder, DecoderOptions, DecoderError } = iced();
  const decoder = new Decoder(bitness, code, DecoderOptions.None);
  try {
    decoder.ip = ip;
    while (out.length < max && decoder.canDecode) {
      const start = decoder.position;
      const insn = decoder.decode();
      try {
        if (insn.isInvalid) {
          if (decoder.lastError === DecoderError.NoMoreBytes) break;
          out.push({ ip: insn.ip, length: 1, bytes: hexBytes(code.subarray(start, start + 1)), text: BAD_INSTRUCTION });
          break;
        }
        let text = f.format(insn);
        if (insn.isIpRelMemoryOperand) text += `${RIP_COMMENT_GAP}# 0x${insn.ipRelMemoryAddress.toString(16)}`;
        out.push({ ip: insn.ip, length: insn.length, bytes: hexBytes(code.subarray(start, start + insn.length)), text });
      } finally {
        insn.free();
      }
    }
  } finally {
    decoder.free();
  }
  return out;
}

/**
 * The code size the CPU decodes with: 64-bit in long mode with CS.L, otherwise CS.D/B chooses
 * 32 or 16 (long mode's compatibility submode and protected mode alike). Real mode is 16-bit.
 */
export function bitnessFor(mode: DisasmCpuMode, csDb: number, csL: number): Bitness {
  if (mode === 'real') return 16;
  if (mode === 'long' && csL) return 64;
  return csDb ? 32 : 16;
}
