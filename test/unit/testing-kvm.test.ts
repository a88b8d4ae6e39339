/**
 * tskvm/testing's kvmStatus() and kvmGate(): whether guests can run here and why not (honouring
 * TSKVM_KVM_DEVICE), and what a guest test does with that: run, skip with the reason, or fail
 * under TSKVM_REQUIRE_KVM=1.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { kvmGate, kvmRequired, kvmStatus, type KvmStatus } from '../../src/testing/kvm.js';

const saved = { device: process.env.TSKVM_KVM_DEVICE, require: process.env.TSKVM_REQUIRE_KVM };

afterEach(() => {
  for (const [name, value] of [
    ['TSKVM_KVM_DEVICE', saved.device],
    ['TSKVM_REQUIRE_KVM', saved.require],
  ] as const) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

const unusable: KvmStatus = { usable: false, device: '/dev/kvm', reason: '/dev/kvm is missing', code: 'ENOKVM' };
const usable: KvmStatus = { usable: true, device: '/dev/kvm', reason: '', code: undefined };

describe('kvmStatus', () => {
  it('names a missing device, and why, from TSKVM_KVM_DEVICE', () => {
    process.env.TSKVM_KVM_DEVICE = '/nonexistent/kvm';
    const status = kvmStatus();
    expect(status).toMatchObject({ usable: false, device: '/nonexistent/kvm', code: 'ENOKVM' });
    expect(status.reason).toMatch(/\/nonexistent\/kvm is not available \(ENOENT/);
    expect(kvmStatus()).toBe(status); // asked once per device
  });

  it('tells a file that is not KVM', () => {
    process.env.TSKVM_KVM_DEVICE = '/dev/null';
    const status = kvmStatus();
    expect(status.usable).toBe(false);
    expect(status.device).toBe('/dev/null');
    expect(status.reason).toMatch(/\/dev\/null/);
    expect(status.reason).toMatch(/not KVM|TSKVM_KVM_DEVICE/);
  });

  it('answers for /dev/kvm itself by default', () => {
    delete process.env.TSKVM_KVM_DEVICE;
    const status = kvmStatus();
    expect(status.device).toBe('/dev/kvm');
    expect(status.usable).toBe(status.reason === '');
    if (!status.usable) expect(status.code).toMatch(/^E[A-Z]+$/);
  });
});

describe('kvmGate', () => {
  it('runs where KVM is usable, whatever TSKVM_REQUIRE_KVM says', () => {
    expect(kvmGate(usable, false)).toEqual({ action: 'run' });
    expect(kvmGate(usable, true)).toEqual({ action: 'run' });
  });

  it('skips with the reason, or fails under TSKVM_REQUIRE_KVM=1', () => {
    expect(kvmGate(unusable, false)).toEqual({ action: 'skip', reason: 'no usable KVM: /dev/kvm is missing' });
    expect(kvmGate(unusable, true)).toEqual({
      action: 'fail',
      reason: 'TSKVM_REQUIRE_KVM=1, but guests cannot run here: /dev/kvm is missing',
    });
  });

  it('reads TSKVM_REQUIRE_KVM=1 (and only 1) from the environment', () => {
    process.env.TSKVM_REQUIRE_KVM = '1';
    expect(kvmRequired()).toBe(true);
    process.env.TSKVM_REQUIRE_KVM = '0';
    expect(kvmRequired()).toBe(false);
    delete process.env.TSKVM_REQUIRE_KVM;
    expect(kvmRequired()).toBe(false);
    process.env.TSKVM_KVM_DEVICE = '/nonexistent/kvm';
    process.env.TSKVM_REQUIRE_KVM = '1';
    expect(kvmGate().action).toBe('fail');
  });
});
