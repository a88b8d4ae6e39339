import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { DURATION_MAX_MS, MEMORY_MAX, parseDuration, parseMemorySize, parseSize } from '../../src/units.js';

const KiB = 2 ** 10;
const MiB = 2 ** 20;
const GiB = 2 ** 30;

function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    expect((e as UsageError).code).toBe('EUSAGE');
    return e as UsageError;
  }
  throw new Error('expected a UsageError');
}

describe('parseSize / parseMemorySize', () => {
  it.each([
    ['16M', 16 * MiB],
    ['16m', 16 * MiB],
    ['1G', GiB],
    ['1g', GiB],
    ['64K', 64 * KiB],
    ['64k', 64 * KiB],
    ['512KiB', 512 * KiB],
    ['2MB', 2 * MiB],
    ['2MiB', 2 * MiB],
    ['4096B', 4096],
    ['4096b', 4096],
    ['16', 16 * MiB],
    ['1.5M', 1.5 * MiB],
    [' 32M ', 32 * MiB],
    ['4G', 4 * GiB],
  ])('%j is %i bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
    expect(parseMemorySize(text)).toBe(bytes);
  });

  it('allows the largest memory size and nothing above it', () => {
    expect(MEMORY_MAX).toBe(4 * GiB);
    expect(parseMemorySize(`${MEMORY_MAX}B`)).toBe(MEMORY_MAX);
    const err = usageError(() => parseMemorySize(`${MEMORY_MAX + 4096}B`));
    expect(err.message).toContain('at most 4G');
  });

  it.each(['', 'abc', '-1M', '16Q', 'M', '1.M', '16 M M', '0x10M'])('rejects %j, quoting it', (text) => {
    const err = usageError(() => parseSize(text, 'memory size'));
    expect(err.message).toContain(`'${text}'`);
    expect(err.message).toContain('invalid memory size');
    const err2 = usageError(() => parseMemorySize(text));
    expect(err2.message).toContain(`invalid memory size '${text}'`);
  });

  it('rejects 0', () => {
    const err = usageError(() => parseMemorySize('0'));
    expect(err.message).toBe("invalid memory size '0': guest memory must be larger than 0");
    expect(usageError(() => parseMemorySize('0K')).message).toContain("'0K'");
  });

  it('rejects a size that is not a whole number of pages', () => {
    const err = usageError(() => parseMemorySize('1000B'));
    expect(err.message).toBe("invalid memory size '1000B': guest memory must be a whole number of 4K pages");
    expect(usageError(() => parseMemorySize('6K')).message).toContain("'6K'");
  });

  it('rejects a size over the maximum', () => {
    const err = usageError(() => parseMemorySize('5G'));
    expect(err.message).toBe("invalid memory size '5G': at most 4G of guest memory is supported");
    expect(usageError(() => parseMemorySize('1T')).message).toContain("'1T'");
  });

  it('rejects a fractional number of bytes', () => {
    const err = usageError(() => parseSize('1.5B'));
    expect(err.message).toContain("'1.5B'");
  });

  it('names what is being parsed', () => {
    expect(usageError(() => parseSize('x')).message).toContain("invalid size 'x'");
  });
});

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['10s', 10_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['3', 3000],
    ['1.5s', 1500],
    ['0.25', 250],
    [' 7s ', 7000],
    ['1ms', 1],
  ])('%j is %i ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it('rounds a fraction of a millisecond up', () => {
    expect(parseDuration('0.5ms')).toBe(1);
    expect(parseDuration('1.0001s')).toBe(1001);
  });

  it('rejects 0', () => {
    const err = usageError(() => parseDuration('0', 'timeout'));
    expect(err.message).toBe("invalid timeout '0': it must be longer than 0");
    expect(usageError(() => parseDuration('0ms')).message).toContain("'0ms'");
  });

  it.each(['', 'ten', '-5s', '5d', 's', '5 sec', '1e3'])('rejects %j, quoting it', (text) => {
    const err = usageError(() => parseDuration(text, 'timeout'));
    expect(err.message).toContain(`invalid timeout '${text}'`);
    expect(err.message).toContain('ms, s, m or h');
  });

  it('accepts the largest duration setTimeout supports and rejects anything larger', () => {
    expect(DURATION_MAX_MS).toBe(2 ** 31 - 1);
    expect(parseDuration(`${DURATION_MAX_MS}ms`)).toBe(DURATION_MAX_MS);
    const err = usageError(() => parseDuration(`${DURATION_MAX_MS + 1}ms`, 'timeout'));
    expect(err.message).toBe(`invalid timeout '${DURATION_MAX_MS + 1}ms': at most 24 days`);
    expect(usageError(() => parseDuration('25d')).message).toContain("'25d'");
    expect(usageError(() => parseDuration('600h')).message).toContain('at most 24 days');
    expect(usageError(() => parseDuration('1000000000h')).message).toContain("'1000000000h'");
  });
});
