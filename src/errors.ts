/**
 * Errors about what the user asked for (bad options, bad images, a callback of theirs that
 * failed): the CLI exits 2 for these. KvmError (src/kvm/error.ts) covers a host that cannot run
 * VMs or is out of resources: the CLI exits 1.
 *
 * Codes: EUSAGE (a bad option), EIMAGE (a bad or unreadable guest file), EOUTPUT (an output
 * file, stream or fd that cannot be written), ECALLBACK (a caller's callback threw; `cause` has it).
 */
export type UsageErrorCode = 'EUSAGE' | 'EIMAGE' | 'EOUTPUT' | 'ECALLBACK';

export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    readonly code: UsageErrorCode = 'EUSAGE',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
