/**
 * Where tskvm's BIOS keeps things: the trap port its stubs use, the trap frame they lay out on
 * the caller's stack, the BIOS data area (BDA) fields the services read and write, and the fixed
 * ROM offsets a PC BIOS has had since the IBM AT (programs jump to some of them directly).
 *
 * The BIOS is TypeScript behind tiny real-mode stubs: an INT lands on a stub in the BIOS area
 * (segment F000), which saves the caller's registers on the caller's stack and writes SS:SP to
 * BIOS_TRAP_PORT with one `out dx, eax`; the VMM performs the service on that frame (registers,
 * FLAGS in the INT's iret frame, guest memory) and the stub restores the registers and irets.
 */
import { BDA_ADDRESS, BIOS_AREA_ADDRESS } from '../arch/x86/pc-layout.js';

/** The private port the stubs write SS:SP to (one 4-byte `out`). Nothing on a PC decodes it. */
export const BIOS_TRAP_PORT = 0xb105;
/** The trap device claims a dword. */
export const BIOS_TRAP_PORT_COUNT = 4;
export const BIOS_DEVICE_NAME = 'bios';

/** The BIOS's real-mode segment: the ROM sits at 0xF0000-0xFFFFF. */
export const BIOS_SEGMENT = BIOS_AREA_ADDRESS >>> 4; // 0xF000
/** The ROM is the top 8 KiB of the BIOS area; below it the MP table (0xF0000-0xF1FFF) and free space. */
export const ROM_OFFSET = 0xe000;
export const ROM_SIZE = 0x2000;
export const ROM_ADDRESS = BIOS_AREA_ADDRESS + ROM_OFFSET;

// --- The trap frame, as the stubs lay it out (offsets from the SS:SP they report) ---------------
// push word VECTOR; pushad; push ds; push es — under the INT's own IP, CS, FLAGS.
export const FRAME_ES = 0;
export const FRAME_DS = 2;
export const FRAME_EDI = 4;
export const FRAME_ESI = 8;
export const FRAME_EBP = 12;
export const FRAME_ESP = 16; // pushad's copy; popad skips it
export const FRAME_EBX = 20;
export const FRAME_EDX = 24;
export const FRAME_ECX = 28;
export const FRAME_EAX = 32;
/** The vector the stub pushed (low byte) and the VMM's answer bits (high byte). */
export const FRAME_VECTOR = 36;
export const FRAME_IP = 38;
export const FRAME_CS = 40;
export const FRAME_FLAGS = 42;
export const FRAME_SIZE = 44;
/** Set by the VMM in the vector word's high byte: not done yet, `sti; hlt` and trap again. */
export const FRAME_STATUS_WAIT = 0x80;
export const FRAME_STATUS_OFFSET = FRAME_VECTOR + 1;
export const FRAME_VECTOR_MASK = 0xff;

// FLAGS bits the services report through.
export const FLAGS_CF = 0x0001;
export const FLAGS_ZF = 0x0040;
export const FLAGS_IF = 0x0200;
export const FLAGS_RESERVED_1 = 0x0002;

/** What an unsupported function returns: CF=1, AH=86h ("function not supported", INT 15h's code). */
export const BIOS_UNSUPPORTED = 0x86;

// --- BIOS data area: offsets from 0x400 (the classic IBM PC/AT layout) ---------------------------
export const BDA = BDA_ADDRESS;
export const BDA_SEG = BDA_ADDRESS >>> 4; // 0x0040
export const BDA_EQUIPMENT_WORD = 0x10;
export const BDA_MEMORY_KIB = 0x13;
export const BDA_KBD_FLAGS0 = 0x17; // shift flags (INT 16h AH=02h)
export const BDA_KBD_FLAGS1 = 0x18; // which shift keys are down
export const BDA_KBD_ALT_KEYPAD = 0x19;
export const BDA_KBD_HEAD = 0x1a; // offset (from 0x400) of the next key to read
export const BDA_KBD_TAIL = 0x1c; // offset of the next free slot
export const BDA_KBD_BUFFER = 0x1e; // 16 words, offsets 0x1E-0x3D
export const BDA_KBD_BUFFER_END = 0x3e;
export const BDA_FLOPPY_RECAL = 0x3e;
export const BDA_FLOPPY_MOTOR = 0x3f;
export const BDA_FLOPPY_MOTOR_TIMEOUT = 0x40;
export const BDA_FLOPPY_STATUS = 0x41; // last INT 13h status, floppies
export const BDA_VIDEO_MODE = 0x49;
export const BDA_VIDEO_COLUMNS = 0x4a; // u16
export const BDA_VIDEO_PAGE_SIZE = 0x4c; // u16, bytes
export const BDA_VIDEO_PAGE_START = 0x4e; // u16, offset of the active page in video memory
export const BDA_CURSOR_POS = 0x50; // u16[8]: column (low), row (high) per page
export const BDA_CURSOR_TYPE = 0x60; // u16: end line (low), start line (high)
export const BDA_VIDEO_PAGE = 0x62;
export const BDA_CRTC_ADDRESS = 0x63; // u16: 0x3D4 (colour) or 0x3B4 (mono)
export const BDA_VIDEO_MSR = 0x65; // mode select register value (CGA 0x3D8)
export const BDA_VIDEO_PALETTE = 0x66;
export const BDA_TICKS = 0x6c; // u32: timer ticks since midnight
export const BDA_MIDNIGHT = 0x70; // u8: set when the tick count rolls over
export const BDA_BREAK = 0x71;
export const BDA_RESET_FLAG = 0x72; // u16: 0x1234 = warm boot
export const BDA_DISK_STATUS = 0x74; // last INT 13h status, hard disks
export const BDA_DISK_COUNT = 0x75;
export const BDA_COM_TIMEOUT = 0x7c; // u8[4]
export const BDA_KBD_BUFFER_START_PTR = 0x80; // u16: start of the keyboard buffer (offset from 0x400)
export const BDA_KBD_BUFFER_END_PTR = 0x82;
export const BDA_VIDEO_ROWS = 0x84; // rows - 1
export const BDA_CHAR_HEIGHT = 0x85; // u16
export const BDA_VIDEO_CTL = 0x87;
export const BDA_VIDEO_SWITCHES = 0x88;
export const BDA_VGA_FLAGS = 0x89;
export const BDA_FLOPPY_MEDIA_STATE = 0x90; // u8[2]
export const BDA_KBD_FLAGS2 = 0x96; // bit 1: last code was E0, bit 4: 101/102-key keyboard
export const BDA_KBD_LEDS = 0x97;

// Shift flags (BDA 0x17).
export const KBD_RSHIFT = 0x01;
export const KBD_LSHIFT = 0x02;
export const KBD_CTRL = 0x04;
export const KBD_ALT = 0x08;
export const KBD_SCROLL_LOCK = 0x10;
export const KBD_NUM_LOCK = 0x20;
export const KBD_CAPS_LOCK = 0x40;
export const KBD_INSERT = 0x80;
// BDA 0x18.
export const KBD_LCTRL_DOWN = 0x01;
export const KBD_LALT_DOWN = 0x02;
// BDA 0x96.
export const KBD2_LAST_E0 = 0x02;
export const KBD2_RCTRL = 0x04;
export const KBD2_RALT = 0x08;
export const KBD2_ENHANCED = 0x10;

/** Timer ticks in a day: 0x1800B0 (the PIT's 1193182 Hz / 65536 × 86400 s, as every BIOS counts). */
export const TICKS_PER_DAY = 0x1800b0;
/** PIT input clock and the BIOS's divisor: 18.2 ticks a second. */
export const PIT_HZ = 1193182;
export const PIT_TICK_DIVISOR = 65536;
export const TICK_MS = (PIT_TICK_DIVISOR / PIT_HZ) * 1000;

// --- Fixed ROM entry points (offsets in segment F000), as on the IBM AT and every BIOS since ----
export const ROM_POST = 0xe05b;
export const ROM_NMI = 0xe2c3;
export const ROM_INT13 = 0xe3fe;
export const ROM_FDPT = 0xe401; // fixed disk parameter table (INT 41h)
export const ROM_INT19 = 0xe6f2;
export const ROM_CONFIG_TABLE = 0xe6f5; // INT 15h AH=C0h
export const ROM_BAUD_TABLE = 0xe729;
export const ROM_INT14 = 0xe739;
export const ROM_INT16 = 0xe82e;
export const ROM_INT09 = 0xe987;
export const ROM_INT40 = 0xec59;
export const ROM_DISKETTE_TABLE = 0xefc7; // INT 1Eh
export const ROM_INT17 = 0xefd2;
export const ROM_INT10 = 0xf065;
export const ROM_VIDEO_PARAMS = 0xf0a4; // INT 1Dh
export const ROM_INT12 = 0xf841;
export const ROM_INT11 = 0xf84d;
export const ROM_INT15 = 0xf859;
export const ROM_INT1A = 0xfe6e;
export const ROM_INT08 = 0xfea5;
export const ROM_IRET = 0xff53;
export const ROM_INT05 = 0xff54;
export const ROM_RESET = 0xfff0;
export const ROM_DATE = 0xfff5; // "MM/DD/YY"
export const ROM_MODEL = 0xfffe;
/** IBM's model byte for an AT, which SeaBIOS reports too. */
export const PC_MODEL_AT = 0xfc;
export const BIOS_DATE = '01/01/25';

/** Where POST leaves the stack: just under the boot sector, so SS:SP = 0000:7C00 at boot. */
export const POST_STACK_SEGMENT = 0;
export const POST_STACK_POINTER = 0x7c00;
export const BOOT_SECTOR_ADDRESS = 0x7c00;
export const SECTOR_SIZE = 512;
export const BOOT_SIGNATURE_OFFSET = 510;
export const BOOT_SIGNATURE = 0xaa55;

/** Linear address of a real-mode segment:offset, as the CPU forms it (no A20 wrap: A20 is on). */
export const linear = (segment: number, offset: number): number => ((segment & 0xffff) << 4) + (offset & 0xffff);
