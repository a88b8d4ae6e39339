/**
 * Errors about what the user asked for (bad options, bad images): the CLI exits 2 for these.
 * KvmError (src/kvm/error.ts) covers a host that cannot run VMs: the CLI exits 1.
 */
export type UsageErrorCode = 'EUSAGE' | 'EIMAGE';

export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    readonly code: UsageErrorCode = 'EUSAGE',
  ) {
    super(message);
  }
}
