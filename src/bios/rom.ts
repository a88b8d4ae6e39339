/**
 * The BIOS ROM (F000:E000-F000:FFFF), generated as machine code: POST, the trap stubs behind the
 * IVT, the timer interrupt, the default interrupt handlers and the data tables a PC BIOS keeps
 * at fixed addresses. Every service stub is `push word VECTOR; jmp common`; `common` saves the
 * caller's registers on the caller's stack, reports SS:SP on BIOS_TRAP_PORT, and either returns
 * (iret) or, when the VMM set FRAME_STATUS_WAIT, waits with `sti; hlt` and traps again.
 */
import { Asm16, SREG_DS, SREG_ES, SREG_SS } from './asm.js';
import {
  BDA,
  BDA_FLOPPY_MOTOR,
  BDA_FLOPPY_MOTOR_TIMEOUT,
  BDA_MIDNIGHT,
  BDA_TICKS,
  BIOS_DATE,
  BIOS_SEGMENT,
  BIOS_TRAP_PORT,
  FRAME_STATUS_OFFSET,
  FRAME_STATUS_WAIT,
  PC_MODEL_AT,
  POST_STACK_POINTER,
  POST_STACK_SEGMENT,
  ROM_BAUD_TABLE,
  ROM_CONFIG_TABLE,
  ROM_DATE,
  ROM_DISKETTE_TABLE,
  ROM_FDPT,
  ROM_INT05,
  ROM_INT08,
  ROM_INT09,
  ROM_INT10,
  ROM_INT11,
  ROM_INT12,
  ROM_INT13,
  ROM_INT14,
  ROM_INT15,
  ROM_INT16,
  ROM_INT17,
  ROM_INT19,
  ROM_INT1A,
  ROM_INT40,
  ROM_IRET,
  ROM_MODEL,
  ROM_NMI,
  ROM_OFFSET,
  ROM_POST,
  ROM_RESET,
  ROM_SIZE,
  ROM_VIDEO_PARAMS,
  TICKS_PER_DAY,
} from './layout.js';

// 8259A PICs, as SeaBIOS programs them: IRQ0-7 at vectors 08h-0Fh, IRQ8-15 at 70h-77h.
export const PIC1_COMMAND = 0x20;
export const PIC1_DATA = 0x21;
export const PIC2_COMMAND = 0xa0;
export const PIC2_DATA = 0xa1;
export const PIC_ICW1_INIT_ICW4 = 0x11; // edge-triggered, cascade, ICW4 follows
export const PIC1_VECTOR_BASE = 0x08;
export const PIC2_VECTOR_BASE = 0x70;
export const PIC_ICW3_MASTER_SLAVE_ON_IRQ2 = 0x04;
export const PIC_ICW3_SLAVE_ID = 0x02;
export const PIC_ICW4_8086 = 0x01;
export const PIC_EOI = 0x20;
/** Master: IRQ0 (timer), IRQ1 (keyboard) and IRQ2 (the cascade) open; the slave's lines masked. */
export const PIC1_MASK_AT_BOOT = 0xf8;
export const PIC2_MASK_AT_BOOT = 0xff;
// 8254 PIT channel 0: mode 3 (square wave), lobyte/hibyte, divisor 0 = 65536: 18.2 Hz.
export const PIT_CHANNEL0 = 0x40;
export const PIT_MODE = 0x43;
export const PIT_CH0_MODE3_LOHI = 0x36;
// i8042: command 60h writes the controller command byte.
export const KBC_DATA = 0x60;
export const KBC_COMMAND = 0x64;
export const KBC_CMD_WRITE_CCB = 0x60;
/** Keyboard interrupt on, system flag, aux (mouse) clock off, translation to scan code set 1. */
export const KBC_CCB_AT_BOOT = 0x65;

export const INT_NMI = 0x02;
export const INT_PRINT_SCREEN = 0x05;
export const INT_TIMER = 0x08;
export const INT_KEYBOARD = 0x09;
export const INT_VIDEO = 0x10;
export const INT_EQUIPMENT = 0x11;
export const INT_MEMORY = 0x12;
export const INT_DISK = 0x13;
export const INT_SERIAL = 0x14;
export const INT_SYSTEM = 0x15;
export const INT_KEYBOARD_SERVICE = 0x16;
export const INT_PRINTER = 0x17;
export const INT_BOOT_FAILED = 0x18;
export const INT_BOOTSTRAP = 0x19;
export const INT_TIME = 0x1a;
export const INT_USER_TIMER = 0x1c;
export const INT_VIDEO_PARAMS = 0x1d;
export const INT_DISKETTE_PARAMS = 0x1e;
export const INT_FLOPPY_ORIGINAL = 0x40;
export const INT_FDPT0 = 0x41;
export const INT_FDPT1 = 0x46;

/** The vectors whose service runs in the VMM (a trap stub each). */
export const TRAPPED_VECTORS = [
  INT_KEYBOARD,
  INT_VIDEO,
  INT_EQUIPMENT,
  INT_MEMORY,
  INT_DISK,
  INT_SERIAL,
  INT_SYSTEM,
  INT_KEYBOARD_SERVICE,
  INT_PRINTER,
  INT_BOOT_FAILED,
  INT_BOOTSTRAP,
  INT_TIME,
] as const;

/** 11-byte diskette parameter table (INT 1Eh): the IBM values for a 1.44 MB drive. */
export const DISKETTE_PARAMETERS = [0xaf, 0x02, 0x25, 0x02, 18, 0x1b, 0xff, 0x6c, 0xf6, 0x0f, 0x08];
/** INT 15h C0h: length 8, model AT, submodel 0, revision 1; feature 1: second PIC, RTC, EBDA. */
export const CONFIG_FEATURE1 = 0x40 | 0x20 | 0x04;
export const CONFIG_TABLE_LENGTH = 8;
/** A fixed disk parameter table (INT 41h/46h) is 16 bytes. */
export const FDPT_SIZE = 16;
/** The timer's motor time-out turns every floppy motor off (BDA 0x3F bits 0-3). */
const FLOPPY_MOTOR_BITS_CLEAR = 0xf0;
/** Divisors for 110, 150, 300, 600, 1200, 2400, 4800 and 9600 baud (INT 14h AH=00h). */
export const BAUD_DIVISORS = [0x0417, 0x0300, 0x0180, 0x00c0, 0x0060, 0x0030, 0x0018, 0x000c];

export interface BiosRom {
  /** The bytes of F000:E000-F000:FFFF. */
  bytes: Uint8Array;
  /** Offset (segment F000) of each vector's handler; vectors not listed get `iret`. */
  vectors: Map<number, number>;
  /** Where POST starts (F000:E05B) and where a finished boot halts. */
  post: number;
  halt: number;
  /** The default handler: a lone iret (F000:FF53). */
  iret: number;
  /** Fixed tables: INT 1Eh, INT 41h/46h, INT 15h C0h, INT 1Dh. */
  disketteTable: number;
  fdpt: number;
  configTable: number;
  videoParams: number;
}

/** Assembles the ROM, in address order. Pure: the same bytes every time. */
export function buildBiosRom(): BiosRom {
  const a = new Asm16(ROM_OFFSET);
  const vectors = new Map<number, number>();
  /** A service stub: the vector, then the common trap (IRQs: the one that also sends EOI). */
  const trapStub = (vector: number): void => {
    vectors.set(vector, a.here);
    a.pushImm16(vector).jmpNear(vector === INT_KEYBOARD ? 'common_irq' : 'common');
  };

  // POST: stack, PICs, PIT, keyboard controller, then INT 19h; INT 18h if that returns.
  if (POST_STACK_SEGMENT !== 0) throw new Error('POST assumes its stack in segment 0');
  a.org(ROM_POST).label('post');
  a.cli().cld();
  a.xorAxAx().movSregFromAx(SREG_SS).movSpImm(POST_STACK_POINTER);
  a.movAlImm(PIC_ICW1_INIT_ICW4).outImmAl(PIC1_COMMAND).outImmAl(PIC2_COMMAND);
  a.movAlImm(PIC1_VECTOR_BASE).outImmAl(PIC1_DATA);
  a.movAlImm(PIC2_VECTOR_BASE).outImmAl(PIC2_DATA);
  a.movAlImm(PIC_ICW3_MASTER_SLAVE_ON_IRQ2).outImmAl(PIC1_DATA);
  a.movAlImm(PIC_ICW3_SLAVE_ID).outImmAl(PIC2_DATA);
  a.movAlImm(PIC_ICW4_8086).outImmAl(PIC1_DATA).outImmAl(PIC2_DATA);
  a.movAlImm(PIC1_MASK_AT_BOOT).outImmAl(PIC1_DATA);
  a.movAlImm(PIC2_MASK_AT_BOOT).outImmAl(PIC2_DATA);
  a.movAlImm(PIT_CH0_MODE3_LOHI).outImmAl(PIT_MODE);
  a.movAlImm(0).outImmAl(PIT_CHANNEL0).outImmAl(PIT_CHANNEL0);
  a.movAlImm(KBC_CMD_WRITE_CCB).outImmAl(KBC_COMMAND);
  a.movAlImm(KBC_CCB_AT_BOOT).outImmAl(KBC_DATA);
  a.xorAxAx().movSregFromAx(SREG_DS).movSregFromAx(SREG_ES);
  a.sti().int(INT_BOOTSTRAP).int(INT_BOOT_FAILED);
  a.label('halt').cli().hlt().jmpShort('halt');

  // The trap: save, report SS:SP, wait while the VMM says so, restore, return.
  a.label('common').pushad().pushDs().pushEs().movBpSp();
  a.label('retry');
  a.movAxFromSreg(SREG_SS).shlEaxImm(16).movAxSp().movDxImm(BIOS_TRAP_PORT).outDxEax();
  a.testBytePtrBp(FRAME_STATUS_OFFSET, FRAME_STATUS_WAIT).jz('done');
  a.sti().hlt().cli().jmpShort('retry');
  a.label('done').popEs().popDs().popad().addSpImm8(2).iret();
  // A hardware interrupt's trap: the same, then end of interrupt at the master PIC.
  a.label('common_irq').pushad().pushDs().pushEs();
  a.movAxFromSreg(SREG_SS).shlEaxImm(16).movAxSp().movDxImm(BIOS_TRAP_PORT).outDxEax();
  a.movAlImm(PIC_EOI).outImmAl(PIC1_COMMAND);
  a.popEs().popDs().popad().addSpImm8(2).iret();

  a.org(ROM_NMI).iret();
  vectors.set(INT_NMI, ROM_NMI);
  a.org(ROM_INT13).jmpNear(`stub_${INT_DISK}`);
  a.org(ROM_FDPT).zeros(2 * FDPT_SIZE); // filled by POST from the hard disks' geometry

  // Stubs the AT layout leaves no room for at their fixed entries, and the default IRQ handlers.
  a.label(`stub_${INT_DISK}`);
  trapStub(INT_DISK);
  a.label(`stub_${INT_BOOTSTRAP}`);
  trapStub(INT_BOOTSTRAP);
  trapStub(INT_BOOT_FAILED);
  a.label('irq_master').pushAx().movAlImm(PIC_EOI).outImmAl(PIC1_COMMAND).popAx().iret();
  a.label('irq_slave').pushAx().movAlImm(PIC_EOI).outImmAl(PIC2_COMMAND).outImmAl(PIC1_COMMAND).popAx().iret();
  for (let irq = 2; irq < 8; irq++) vectors.set(PIC1_VECTOR_BASE + irq, a.address('irq_master'));
  for (let irq = 0; irq < 8; irq++) vectors.set(PIC2_VECTOR_BASE + irq, a.address('irq_slave'));

  a.org(ROM_INT19).jmpNear(`stub_${INT_BOOTSTRAP}`);
  vectors.set(INT_BOOTSTRAP, ROM_INT19);
  vectors.set(INT_DISK, ROM_INT13);
  a.org(ROM_CONFIG_TABLE).word(CONFIG_TABLE_LENGTH).bytes(PC_MODEL_AT, 0, 1, CONFIG_FEATURE1, 0, 0, 0, 0);
  a.org(ROM_BAUD_TABLE);
  for (const divisor of BAUD_DIVISORS) a.word(divisor);
  a.org(ROM_INT14);
  trapStub(INT_SERIAL);
  a.org(ROM_INT16);
  trapStub(INT_KEYBOARD_SERVICE);
  a.org(ROM_INT09);
  trapStub(INT_KEYBOARD);
  a.org(ROM_INT40).jmpNear(`stub_${INT_DISK}`);
  vectors.set(INT_FLOPPY_ORIGINAL, ROM_INT40);
  a.org(ROM_DISKETTE_TABLE).bytes(...DISKETTE_PARAMETERS);
  a.org(ROM_INT17);
  trapStub(INT_PRINTER);
  a.org(ROM_INT10);
  trapStub(INT_VIDEO);
  a.org(ROM_INT12);
  trapStub(INT_MEMORY);
  a.org(ROM_INT11);
  trapStub(INT_EQUIPMENT);
  a.org(ROM_INT15);
  trapStub(INT_SYSTEM);
  a.org(ROM_INT1A);
  trapStub(INT_TIME);

  // The timer: tick count, midnight flag, floppy motor time-out, INT 1Ch, end of interrupt.
  a.org(ROM_INT08);
  vectors.set(INT_TIMER, ROM_INT08);
  a.pushDs().pushAx().xorAxAx().movSregFromAx(SREG_DS);
  a.incDwordMem(BDA + BDA_TICKS)
    .cmpDwordMemImm(BDA + BDA_TICKS, TICKS_PER_DAY)
    .jb('tick_done');
  a.movDwordMemImm(BDA + BDA_TICKS, 0).movByteMemImm(BDA + BDA_MIDNIGHT, 1);
  a.label('tick_done');
  a.cmpByteMemImm(BDA + BDA_FLOPPY_MOTOR_TIMEOUT, 0).jz('motor_done');
  a.decByteMem(BDA + BDA_FLOPPY_MOTOR_TIMEOUT).jnz('motor_done');
  a.andByteMemImm(BDA + BDA_FLOPPY_MOTOR, FLOPPY_MOTOR_BITS_CLEAR);
  a.label('motor_done');
  a.int(INT_USER_TIMER).movAlImm(PIC_EOI).outImmAl(PIC1_COMMAND).popAx().popDs().iret();

  a.org(ROM_IRET).iret();
  a.org(ROM_INT05).iret(); // print screen: there is no printer
  vectors.set(INT_PRINT_SCREEN, ROM_INT05);
  a.org(ROM_RESET).jmpFar(BIOS_SEGMENT, ROM_POST);
  a.org(ROM_DATE).ascii(BIOS_DATE).bytes(0);
  a.org(ROM_MODEL).bytes(PC_MODEL_AT, 0);
  const bytes = a.assemble();
  if (bytes.length !== ROM_SIZE) throw new Error(`the ROM is ${bytes.length} bytes, not ${ROM_SIZE}`);
  return {
    bytes,
    vectors,
    post: a.address('post'),
    halt: a.address('halt'),
    iret: ROM_IRET,
    disketteTable: ROM_DISKETTE_TABLE,
    fdpt: ROM_FDPT,
    configTable: ROM_CONFIG_TABLE,
    videoParams: ROM_VIDEO_PARAMS,
  };
}
