/**
 * Range checks for values tskvm writes into guest-visible structures (firmware tables, device
 * configuration): a programming error, so a RangeError, not a UsageError.
 */
export function checkInteger(what: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`${what} must be an integer from ${min} to ${max}, not ${value}`);
  }
}
