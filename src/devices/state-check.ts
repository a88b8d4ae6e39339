/**
 * Checks for the saved state a device's restore() is given (Snapshottable in device.ts). A
 * snapshot file comes from outside the process, so a device takes nothing on trust: each field
 * is checked for its type and range, and a bad one is a UsageError that names the device, the
 * field and what was expected (the snapshot is the user's input), never a crash later.
 */
import { UsageError } from '../errors.js';

/** A saved state's fields, once it is known to be an object. */
export type StateFields = Readonly<Record<string, unknown>>;

/** Refuses a saved state: a UsageError naming the device and what is wrong with it. */
export function refuseState(device: string, what: string): never {
  throw new UsageError(`the snapshot's ${device} state is not valid: ${what} (was the snapshot made by another tskvm, or damaged?)`);
}

/** The state as an object of fields; refuses anything else. */
export function stateFields(device: string, state: unknown): StateFields {
  if (typeof state !== 'object' || state === null || Array.isArray(state)) refuseState(device, 'it is not an object');
  return state as StateFields;
}

/** An integer field from `min` to `max`. */
export function intField(device: string, fields: StateFields, name: string, min: number, max: number): number {
  const v = fields[name];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    refuseState(device, `${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(v)}`);
  }
  return v;
}

/** An integer field with no bits outside `mask`. */
export function maskField(device: string, fields: StateFields, name: string, mask: number): number {
  const v = fields[name];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || (v & ~mask) !== 0) {
    refuseState(device, `${name} must be a value of the bits 0x${mask.toString(16)}, not ${JSON.stringify(v)}`);
  }
  return v;
}

export function boolField(device: string, fields: StateFields, name: string): boolean {
  const v = fields[name];
  if (typeof v !== 'boolean') refuseState(device, `${name} must be true or false, not ${JSON.stringify(v)}`);
  return v;
}

/** An array of exactly `length` bytes (or at most `length` when `exact` is false). */
export function bytesField(device: string, fields: StateFields, name: string, length: number, exact = true): number[] {
  const v = fields[name];
  if (
    !Array.isArray(v) ||
    (exact ? v.length !== length : v.length > length) ||
    !v.every((b) => typeof b === 'number' && Number.isInteger(b) && b >= 0 && b <= 0xff)
  ) {
    refuseState(device, `${name} must be ${exact ? '' : 'at most '}${length} bytes`);
  }
  return v as number[];
}

/**
 * An unsigned integer of up to `bits` bits saved as a decimal string (JSON has no 64-bit
 * integers): a 64-bit counter or comparator.
 */
export function bigField(device: string, fields: StateFields, name: string, bits: bigint): bigint {
  const v = fields[name];
  if (typeof v !== 'string' || !/^[0-9]{1,20}$/.test(v) || BigInt(v) >= 1n << bits) {
    refuseState(device, `${name} must be a decimal string of an unsigned ${bits}-bit value, not ${JSON.stringify(v)}`);
  }
  return BigInt(v);
}

/** An array field of `length` entries, each checked by `each`. */
export function arrayField<T>(device: string, fields: StateFields, name: string, length: number, each: (v: unknown, i: number) => T): T[] {
  const v = fields[name];
  if (!Array.isArray(v) || v.length !== length) refuseState(device, `${name} must be a list of ${length}`);
  return v.map(each);
}
