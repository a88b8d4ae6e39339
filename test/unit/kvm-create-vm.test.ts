/**
 * KVM_CREATE_VM is retried after EINTR (src/kvm/ioctls.ts): the kernel refuses to create a VM
 * while a signal is pending (a profiler's SIGPROF made `node --cpu-prof` runs fail), having
 * created nothing. Other errors still throw. The backend is a fake here: no KVM needed.
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { EINTR, ENOMEM, KVM_API_VERSION } from '../../src/kvm/constants.js';

const REQUESTS = { KVM_GET_API_VERSION: 1, KVM_CHECK_EXTENSION: 2, KVM_CREATE_VM: 3, KVM_GET_VCPU_MMAP_SIZE: 4 };
const KVM_FD = 10;
const VM_FD = 11;
const RUN_SIZE = 12288;
/** What KVM_CREATE_VM answers, call by call (then VM_FD). */
let createVmAnswers: number[] = [];
let createVmCalls = 0;

vi.mock('../../src/kvm/native.js', () => ({
  native: () => ({
    ioctls: REQUESTS,
    open: () => KVM_FD,
    close: () => 0,
    ioctl: (_fd: number, request: number) => {
      if (request === REQUESTS.KVM_GET_API_VERSION) return KVM_API_VERSION;
      if (request === REQUESTS.KVM_CHECK_EXTENSION) return 1;
      if (request === REQUESTS.KVM_GET_VCPU_MMAP_SIZE) return RUN_SIZE;
      if (request === REQUESTS.KVM_CREATE_VM) {
        createVmCalls++;
        return createVmAnswers.shift() ?? VM_FD;
      }
      return -1;
    },
  }),
}));

const { Kvm } = await import('../../src/kvm/ioctls.js');

describe('Kvm.createVm', () => {
  beforeEach(() => {
    createVmCalls = 0;
  });

  it('asks again while the kernel answers EINTR, and returns the VM it then creates', () => {
    createVmAnswers = [-EINTR, -EINTR, -EINTR];
    const kvm = Kvm.open('/dev/fake-kvm');
    const vm = kvm.createVm();
    expect(vm.fd).toBe(VM_FD);
    expect(createVmCalls).toBe(4);
  });

  it('throws any other error at once, naming KVM_CREATE_VM', () => {
    createVmAnswers = [-ENOMEM];
    const kvm = Kvm.open('/dev/fake-kvm');
    expect(() => kvm.createVm()).toThrow(/KVM_CREATE_VM failed: ENOMEM/);
    expect(createVmCalls).toBe(1);
  });
});
