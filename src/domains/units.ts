/**
 * libvirt's memory units, as its domain XML takes them (`<memory unit='MiB'>16</memory>`): a
 * bare value is in the element's default unit (KiB for memory); b/byte/bytes are bytes; k, M,
 * G, T, P, E alone or followed by 'iB' are powers of 1024; followed by 'B' alone (KB, MB, ...)
 * powers of 1000. Case does not matter, as with libvirt.
 */
import { UsageError } from '../errors.js';

export const KIB = 1024;
const BINARY_BASE = 1024;
const DECIMAL_BASE = 1000;
const PREFIX_POWERS: Readonly<Record<string, number>> = { k: 1, m: 2, g: 3, t: 4, p: 5, e: 6 };
const BYTE_UNITS = new Set(['b', 'byte', 'bytes']);

/** The unit names accepted, for messages. */
export const UNIT_NAMES = 'b, bytes, KiB, MiB, GiB, TiB (or k, M, G, T: powers of 1024), KB, MB, GB, TB (powers of 1000)';

/** How many bytes one `unit` is, or undefined for a name libvirt does not know. */
export function unitBytes(unit: string): number | undefined {
  const u = unit.toLowerCase();
  if (BYTE_UNITS.has(u)) return 1;
  const m = /^([kmgtpe])(ib|b)?$/.exec(u);
  if (!m) return undefined;
  const base = m[2] === 'b' ? DECIMAL_BASE : BINARY_BASE;
  return base ** PREFIX_POWERS[m[1]!]!;
}

/**
 * A scaled value in bytes: `value` must be a whole, non-negative number, as libvirt's XML takes it.
 * `where` names the element (and its attribute) in errors.
 */
export function scaledBytes(value: string, unit: string | undefined, defaultUnit: string, where: string): number {
  const text = value.trim();
  if (!/^\d+$/.test(text))
    throw new UsageError(`${where}: '${value}' is not a whole number: write digits only, and the unit in the unit attribute`);
  const name = unit ?? defaultUnit;
  const scale = unitBytes(name);
  if (scale === undefined) throw new UsageError(`${where}, attribute unit='${name}': unknown unit: use ${UNIT_NAMES}`);
  const bytes = Number(text) * scale;
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`${where}: ${text} ${name} is too large`);
  return bytes;
}

/** Bytes to KiB, rounded up, as libvirt stores memory sizes. */
export function bytesToKiB(bytes: number): number {
  return Math.ceil(bytes / KIB);
}
