import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { KvmError, errnoName } from '../../src/kvm/error.js';

describe('KvmError', () => {
  it.each([-2, -19, -6])('fromOpen(%i) is ENOKVM with the modprobe and nested-virtualisation remedy', (negErrno) => {
    const e = KvmError.fromOpen('/dev/kvm', negErrno);
    expect(e).toBeInstanceOf(KvmError);
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('KvmError');
    expect(e.code).toBe('ENOKVM');
    expect(e.errno).toBe(-negErrno);
    expect(e.syscall).toBe('open /dev/kvm');
    expect(e.message).toContain('/dev/kvm');
    expect(e.message).toContain('modprobe kvm_intel');
    expect(e.message).toContain('modprobe kvm_amd');
    expect(e.message).toContain('nested');
  });

  it('fromOpen(-2) names ENOENT', () => {
    const e = KvmError.fromOpen('/dev/kvm', -2);
    expect(e.message).toContain('ENOENT (errno 2)');
  });

  it('fromOpen(-13) is EKVMACCESS with the kvm-group remedy', () => {
    const e = KvmError.fromOpen('/dev/kvm', -13);
    expect(e.code).toBe('EKVMACCESS');
    expect(e.errno).toBe(13);
    expect(e.syscall).toBe('open /dev/kvm');
    expect(e.message).toContain('permission denied opening /dev/kvm');
    expect(e.message).toContain('kvm group');
    expect(e.message).toContain(`sudo usermod -aG kvm ${os.userInfo().username}`);
  });

  it('fromOpen(-1) (EPERM) is EKVMACCESS too', () => {
    const e = KvmError.fromOpen('/dev/kvm', -1);
    expect(e.code).toBe('EKVMACCESS');
    expect(e.errno).toBe(1);
  });

  it('fromOpen with another errno falls back to EKVM and names the errno', () => {
    const e = KvmError.fromOpen('/dev/kvm', -16);
    expect(e.code).toBe('EKVM');
    expect(e.errno).toBe(16);
    expect(e.syscall).toBe('open /dev/kvm');
    expect(e.message).toBe('open /dev/kvm failed: EBUSY (errno 16)');
  });

  it('uses the device path it is given', () => {
    const e = KvmError.fromOpen('/tmp/no-such-kvm', -2);
    expect(e.syscall).toBe('open /tmp/no-such-kvm');
    expect(e.message.startsWith('/tmp/no-such-kvm is not available (ENOENT (errno 2))')).toBe(true);
  });

  it('apiMismatch is EKVMAPI with both versions', () => {
    const e = KvmError.apiMismatch(11, 12);
    expect(e.code).toBe('EKVMAPI');
    expect(e.errno).toBe(0);
    expect(e.syscall).toBe('KVM_GET_API_VERSION');
    expect(e.message).toContain('KVM API version 11 is not supported');
    expect(e.message).toContain('tskvm needs 12');
  });

  it('fromErrno(KVM_CREATE_VM, -12) is ERESOURCE naming ENOMEM and what to do', () => {
    const e = KvmError.fromErrno('KVM_CREATE_VM', -12);
    expect(e.code).toBe('ERESOURCE');
    expect(e.errno).toBe(12);
    expect(e.syscall).toBe('KVM_CREATE_VM');
    expect(e.message).toMatch(/^KVM_CREATE_VM failed: ENOMEM \(errno 12\): the host is out of memory.*--memory.*fewer guests/);
  });

  it('fromErrno maps EMFILE to ERESOURCE with the ulimit to raise', () => {
    const e = KvmError.fromErrno('KVM_CREATE_VCPU', -24);
    expect(e.code).toBe('ERESOURCE');
    expect(e.message).toMatch(/EMFILE.*ulimit -n/);
  });

  it('fromErrno adds context and accepts a positive errno', () => {
    const e = KvmError.fromErrno('KVM_SET_USER_MEMORY_REGION', 22, 'slot 0');
    expect(e.errno).toBe(22);
    expect(e.message).toBe('KVM_SET_USER_MEMORY_REGION failed: EINVAL (errno 22) (slot 0)');
  });

  it('missingCapability is EKVMCAP', () => {
    const e = KvmError.missingCapability('KVM_CAP_IMMEDIATE_EXIT', 'stopping vCPUs');
    expect(e.code).toBe('EKVMCAP');
    expect(e.syscall).toBe('KVM_CHECK_EXTENSION');
    expect(e.message).toContain('KVM_CAP_IMMEDIATE_EXIT');
    expect(e.message).toContain('stopping vCPUs');
  });

  it('errnoName names known errnos and numbers unknown ones', () => {
    expect(errnoName(4)).toBe('EINTR (errno 4)');
    expect(errnoName(99999)).toBe('errno (errno 99999)');
  });
});
