# s3resume.mb.S - multiboot v1 kernel (ELF32): suspends to RAM through ACPI (S3) and checks that
# the machine resumes at the FACS waking vector in real mode, woken by an RTC alarm, as
# kvm-unit-tests' s3 test does.
#
# Finds the ACPI tables as an OS does: "RSD PTR " in the BIOS area (0xE0000-0xFFFFF, 16-byte
# steps), the RSDT it points to, the FADT ("FACP") among the RSDT's entries; from the FADT the
# FACS, PM1a_EVT_BLK and PM1a_CNT_BLK. Copies RESUME_CODE (16-bit: `out` of RESUMED_CODE to the
# debug-exit port, then `hlt`) to WAKE_ADDRESS and sets the FACS's firmware waking vector to it.
# Sets RTC_EN in PM1a_EN, an RTC alarm that matches every second (the "don't care" value in the
# three alarm registers) with AIE, prints "suspending\n" and writes SLP_TYPx = \_S3 (1) | SLP_EN
# to PM1a_CNT. Firmware resumes at the vector in real mode (CS:IP = 0100:0000): the run ends with
# exit code RESUMED_CODE (0x33). If the write returns instead, it prints "not suspended\n" and
# exits with 1; "no ACPI\n" and 2 if it finds no tables.
# QEMU 7.2 (-accel kvm, the kvm-unit-tests command line): "suspending", exit status 0x67 (= (0x33 << 1) | 1).
    .code32
    .include "kernel32.inc"

    .set BIOS_SCAN_START,   0xe0000
    .set BIOS_SCAN_END,     0x100000
    .set RSDP_RSDT,         16          # RSDT address (u32)
    .set SDT_LENGTH,        4
    .set SDT_HEADER_SIZE,   36
    .set FADT_FIRMWARE_CTRL, 36         # the FACS address
    .set FADT_PM1A_EVT_BLK, 56
    .set FADT_PM1A_CNT_BLK, 64
    .set FACS_WAKING_VECTOR, 12
    .set PM1_EN_OFFSET,     2           # PM1a_EN follows PM1a_STS
    .set PM1_RTC_EN,        1 << 10
    .set PM1_CNT_SLP_S3,    (1 << 10) | (1 << 13)  # SLP_TYPx = 1 (\_S3), SLP_EN
    .set RTC_INDEX,         0x70
    .set RTC_DATA,          0x71
    .set RTC_SECONDS_ALARM, 1
    .set RTC_MINUTES_ALARM, 3
    .set RTC_HOURS_ALARM,   5
    .set RTC_REG_B,         11
    .set RTC_REG_C,         12
    .set RTC_ALARM_DONT_CARE, 0xc0
    .set REG_B_AIE,         0x20
    .set WAKE_ADDRESS,      0x1000
    .set RESUMED_CODE,      0x33

    multiboot_header MB_PAGE_ALIGN | MB_MEMORY_INFO
    kernel32_entry

    mov     $BIOS_SCAN_START, %esi
.Lscan:
    cmpl    $0x20445352, (%esi)         # "RSD "
    jne     .Lnext
    cmpl    $0x20525450, 4(%esi)        # "PTR "
    je      .Lrsdp
.Lnext:
    add     $16, %esi
    cmp     $BIOS_SCAN_END, %esi
    jb      .Lscan
    jmp     no_acpi
.Lrsdp:
    mov     RSDP_RSDT(%esi), %ebx       # %ebx = RSDT
    mov     SDT_LENGTH(%ebx), %ecx
    add     %ebx, %ecx                  # %ecx = end of the RSDT
    lea     SDT_HEADER_SIZE(%ebx), %esi
.Lentry:
    cmp     %ecx, %esi
    jae     no_acpi
    mov     (%esi), %edi
    cmpl    $0x50434146, (%edi)         # "FACP"
    je      .Lfadt
    add     $4, %esi
    jmp     .Lentry
.Lfadt:
    mov     %edi, fadt
    mov     FADT_FIRMWARE_CTRL(%edi), %eax
    movl    $WAKE_ADDRESS, FACS_WAKING_VECTOR(%eax)
    mov     $resume_code, %esi
    mov     $WAKE_ADDRESS, %edi
    mov     $(resume_code_end - resume_code), %ecx
    rep movsb

    mov     fadt, %edi
    mov     FADT_PM1A_EVT_BLK(%edi), %edx
    add     $PM1_EN_OFFSET, %edx
    mov     $PM1_RTC_EN, %ax
    out     %ax, %dx
    mov     $RTC_REG_C, %al             # clear pending RTC flags
    out     %al, $RTC_INDEX
    in      $RTC_DATA, %al
    mov     $RTC_SECONDS_ALARM, %ah
    call    rtc_dont_care
    mov     $RTC_MINUTES_ALARM, %ah
    call    rtc_dont_care
    mov     $RTC_HOURS_ALARM, %ah
    call    rtc_dont_care
    mov     $RTC_REG_B, %al
    out     %al, $RTC_INDEX
    in      $RTC_DATA, %al
    or      $REG_B_AIE, %al
    mov     %al, %ah
    mov     $RTC_REG_B, %al
    out     %al, $RTC_INDEX
    mov     %ah, %al
    out     %al, $RTC_DATA

    print   "suspending\n"
    call    serial_flush
    mov     fadt, %edi
    mov     FADT_PM1A_CNT_BLK(%edi), %edx
    mov     $PM1_CNT_SLP_S3, %ax
    out     %ax, %dx
    print   "not suspended\n"
    mov     $1, %eax
    jmp     debug_exit

# %ah = alarm register: set it to "don't care" (matches every value).
rtc_dont_care:
    mov     %ah, %al
    out     %al, $RTC_INDEX
    mov     $RTC_ALARM_DONT_CARE, %al
    out     %al, $RTC_DATA
    ret

no_acpi:
    print   "no ACPI\n"
    mov     $2, %eax
    jmp     debug_exit

    .data
fadt:
    .long   0
# 16-bit real mode at the waking vector: mov $0xf4, %dx; mov $RESUMED_CODE, %al; out %al, %dx; 1: hlt; jmp 1b
resume_code:
    .byte   0xba, 0xf4, 0x00, 0xb0, RESUMED_CODE, 0xee, 0xf4, 0xeb, 0xfd
resume_code_end:
