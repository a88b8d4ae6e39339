/**
 * The contract between a device with timed interrupts (the HPET's comparators, the RTC's
 * periodic, alarm and update-ended interrupts, the ACPI PM timer's overflow) and whatever wakes
 * the machine for them. Devices have no timers of their own: they compute their state from an
 * injected monotonic clock whenever they are touched. A guest that halts waiting for one of
 * these interrupts touches nothing, so the board asks each device when its next one is due,
 * sleeps (or lets the vCPU halt) until then, and calls `poll()` to raise it.
 *
 * The protocol, for the board (src/board/chipset.ts gathers all three behind one pair):
 * 1. `nextDeadlineNs()` — when the next interrupt the guest has enabled is due, in the device's
 *    clock: nanoseconds of process.hrtime.bigint() unless the device was built with another
 *    `nowNs`. A time at or before now means "due now". undefined: nothing armed (no wake-up
 *    needed until the guest touches the device again, which it can only do by running).
 * 2. At (or after) that time, `poll()` — raises every interrupt due by now, by the device's own
 *    clock; a late call delivers what is late (a periodic timer skips the periods it missed, as
 *    the hardware's would be coalesced), an early one does nothing. Cheap and idempotent.
 * 3. Ask again after each poll() and after the guest runs: any register access may move the
 *    deadline (the board re-reads it whenever it would sleep).
 *
 * Both run in the thread that owns the device (the vCPU's, or the board thread): nextDeadlineNs()
 * may itself deliver what is already due (the RTC brings its registers up to date first).
 * state() never raises a line: what falls due between the last poll and a snapshot is delivered
 * by the restored device's first poll, after the machine's interrupt controllers are back.
 */
export interface TimedDevice {
  nextDeadlineNs(): bigint | undefined;
  poll(): void;
}
