/**
 * Guest-linear reads and writes: an address the guest's code uses, turned into guest-physical
 * page by page (KVM_TRANSLATE when paging is on; identity otherwise), as the GDB stub, the crash
 * dump and --step read the guest.
 */
import { PAGE_SIZE } from '../kvm/constants.js';

/** Guest-linear → guest-physical, undefined when unmapped. */
export type Translate = (linear: bigint) => number | undefined;

/**
 * Visits [linear, linear + length) page by page, translated when `translate` is given, and stops
 * at the first page that is unmapped or outside RAM. Returns how many bytes were visited.
 */
export function walkLinear(
  memory: Uint8Array,
  linear: bigint,
  length: number,
  translate: Translate | undefined,
  visit: (physical: number, offset: number, n: number) => void,
): number {
  let done = 0;
  while (done < length) {
    const at = linear + BigInt(done);
    const physical = translate ? translate(at) : Number(at);
    if (physical === undefined || physical < 0 || physical >= memory.length) break;
    const inPage = PAGE_SIZE - Number(at % BigInt(PAGE_SIZE));
    const n = Math.min(length - done, inPage, memory.length - physical);
    visit(physical, done, n);
    done += n;
    if (n < inPage && done < length) break; // ran into the end of RAM
  }
  return done;
}

/** Up to `length` bytes at a guest-linear address (fewer where a page is unmapped or RAM ends). */
export function readLinear(memory: Uint8Array, linear: bigint, length: number, translate: Translate | undefined): Uint8Array {
  const out = new Uint8Array(length);
  const done = walkLinear(memory, linear, length, translate, (physical, offset, n) =>
    out.set(memory.subarray(physical, physical + n), offset),
  );
  return out.subarray(0, done);
}

/** The most linear address bits an x86-64 CPU implements with 4-level paging (48) or 5-level (57). */
const LA48_SIGN_BIT = 47n;
const LA57_SIGN_BIT = 56n;

/** Whether a 64-bit linear address is canonical (bits above the top implemented one copy it). */
export function isCanonical(address: bigint, la57 = false): boolean {
  const top = address >> (la57 ? LA57_SIGN_BIT : LA48_SIGN_BIT);
  const ones = (1n << (64n - (la57 ? LA57_SIGN_BIT : LA48_SIGN_BIT))) - 1n;
  return top === 0n || top === ones;
}
