/** Shared by the loader unit tests. */
import { execFileSync } from 'node:child_process';
import { expect } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { LoaderError } from '../../src/loader/image.js';

/** Runs `fn`, which must throw a LoaderError (a UsageError with code EIMAGE), and returns it. */
export function loaderError(fn: () => unknown): LoaderError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(LoaderError);
    expect(e).toBeInstanceOf(UsageError);
    expect((e as LoaderError).code).toBe('EIMAGE');
    return e as LoaderError;
  }
  throw new Error('expected a LoaderError');
}

/** GNU as and ld are installed (.ci/run installs them; the guests need them too). */
export function haveBinutils(): boolean {
  try {
    execFileSync('as', ['--version'], { stdio: 'ignore' });
    execFileSync('ld', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
