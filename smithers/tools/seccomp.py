"""A seccomp filter that keeps sandboxed commands away from the kernel keyrings.

Keys are found by serial number and checked against the owner's uid. A sandbox started by
a root server runs as host uid 0 (see sandbox.py), so it could link root's user keyring
into its own and read every key in it. Nothing a task does needs keyrings, so `add_key`,
`request_key` and `keyctl` fail with EPERM (flatpak does the same).

The filter is classic BPF as bwrap's `--seccomp` wants it: an array of `sock_filter`.
Syscall numbers differ per ABI, so it is checked per audit arch; an arch not listed here
is left unfiltered.
"""

from __future__ import annotations

import errno
import struct

# struct seccomp_data: int nr; __u32 arch; ...
_NR_OFFSET = 0
_ARCH_OFFSET = 4
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_AND_K = 0x54
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_X32_BIT = 0x40000000

# audit arch -> (add_key, request_key, keyctl)
_X86_64 = 0xC000003E
_KEYRING_SYSCALLS = {
    _X86_64: (248, 249, 250),  # x86_64 (and x32, whose numbers carry _X32_BIT)
    0x40000003: (286, 287, 288),  # i386, also reachable from x86_64 through int 0x80
    0xC00000B7: (217, 218, 219),  # aarch64
    0x40000028: (309, 310, 311),  # arm
}


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def keyring_filter() -> bytes:
    """The compiled filter: EPERM for the keyring syscalls, everything else allowed.

    Laid out as, per arch: "if arch != A skip this block; load nr; if nr is one of the
    three goto deny; allow", then "allow" for any other arch, then the one "deny".
    Jump offsets count instructions forward from the next one.
    """
    program: list[bytes] = [_insn(_LD_W_ABS, _ARCH_OFFSET)]
    to_deny: list[tuple[int, int]] = []  # (syscall number, where its jump goes)
    for arch, numbers in _KEYRING_SYSCALLS.items():
        load_nr = [_insn(_LD_W_ABS, _NR_OFFSET)]
        if arch == _X86_64:
            load_nr.append(_insn(_AND_K, ~_X32_BIT & 0xFFFFFFFF))
        program.append(_insn(_JEQ_K, arch, jf=len(load_nr) + len(numbers) + 1))
        program += load_nr
        for number in numbers:
            to_deny.append((number, len(program)))
            program.append(b"")  # filled in once the deny's position is known
        program.append(_insn(_RET_K, _RET_ALLOW))
    program.append(_insn(_RET_K, _RET_ALLOW))
    deny_at = len(program)
    program.append(_insn(_RET_K, _RET_ERRNO | errno.EPERM))
    for number, at in to_deny:
        program[at] = _insn(_JEQ_K, number, jt=deny_at - at - 1)
    return b"".join(program)
