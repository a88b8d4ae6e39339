/**
 * `tskvm/testing`: what a guest test needs whatever its runner — guests assembled from source
 * strings, whether this host can run them, a scope that stops a test's guests when it ends, the
 * serial console types, and the checks behind the matchers. `tskvm/vitest` and
 * `tskvm/node-test` build on it. Only re-exports.
 */
export { assemble, assembleFile, defaultCacheDir, type AssembleFormat, type AssembleOptions, type AssemblerSyntax } from './assemble.js';
export { kvmGate, kvmRequired, kvmStatus, REQUIRE_KVM_ENV, type KvmGate, type KvmStatus } from './kvm.js';
export { GuestScope, STOP_WAIT_MS, type TestGuestRun } from './guest-scope.js';
export {
  checkCrash,
  checkExitWith,
  checkSerialOutput,
  describeEnding,
  outputTail,
  type OutputSource,
  type RunResultLike,
  type Verdict,
} from './matchers.js';
export {
  SerialConsole,
  ExpectTimeoutError,
  DEFAULT_EXPECT_TIMEOUT_MS,
  MAX_CONSOLE_OUTPUT,
  type ExpectMatch,
} from '../io/serial-console.js';
