//! x86_64 registers as the debug info numbers them: the one register type
//! of this crate's APIs (DWARF locations, CFI rules), with the mapping to
//! the register set saved in a dump (`ksw_vmcore::cpu::X86Registers`).

use ksw_vmcore::cpu::X86Registers;
use serde::Serialize;

/// An x86_64 register, by its DWARF number (System V psABI, table 3.36).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Register {
    /// DWARF 0.
    Rax,
    /// DWARF 1.
    Rdx,
    /// DWARF 2.
    Rcx,
    /// DWARF 3.
    Rbx,
    /// DWARF 4.
    Rsi,
    /// DWARF 5.
    Rdi,
    /// DWARF 6: the frame pointer.
    Rbp,
    /// DWARF 7: the stack pointer.
    Rsp,
    /// DWARF 8.
    R8,
    /// DWARF 9.
    R9,
    /// DWARF 10.
    R10,
    /// DWARF 11.
    R11,
    /// DWARF 12.
    R12,
    /// DWARF 13.
    R13,
    /// DWARF 14.
    R14,
    /// DWARF 15.
    R15,
    /// DWARF 16: the return address column (the instruction pointer).
    Rip,
    /// Any other DWARF register (vector, x87, segment, ...).
    Other(u16),
}

/// The general-purpose registers and the return address, in DWARF order.
const NUMBERED: [Register; 17] = [
    Register::Rax,
    Register::Rdx,
    Register::Rcx,
    Register::Rbx,
    Register::Rsi,
    Register::Rdi,
    Register::Rbp,
    Register::Rsp,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
    Register::R12,
    Register::R13,
    Register::R14,
    Register::R15,
    Register::Rip,
];

impl Register {
    /// The callee-saved registers of the x86_64 kernel ABI.
    pub const CALLEE_SAVED: [Register; 6] = [
        Register::Rbx,
        Register::Rbp,
        Register::R12,
        Register::R13,
        Register::R14,
        Register::R15,
    ];

    /// The register with DWARF number `number`.
    pub fn from_dwarf(number: u16) -> Register {
        NUMBERED
            .get(usize::from(number))
            .copied()
            .unwrap_or(Register::Other(number))
    }

    /// Its DWARF number.
    pub fn dwarf_number(self) -> u16 {
        match self {
            Register::Other(n) => n,
            known => NUMBERED
                .iter()
                .position(|r| *r == known)
                .map_or(u16::MAX, |i| i as u16),
        }
    }

    /// Its conventional name (`rsp`, `xmm0`), when DWARF's x86_64 register
    /// table has one.
    pub fn name(self) -> Option<&'static str> {
        gimli::X86_64::register_name(gimli::Register(self.dwarf_number()))
    }

    /// The name for messages: `rbx`, or `rN` for a register without one.
    pub fn text(self) -> String {
        self.name()
            .map_or_else(|| format!("r{}", self.dwarf_number()), str::to_string)
    }

    /// Its value in a register set saved in a dump (`pt_regs` order);
    /// `None` for registers a `pt_regs` does not hold.
    pub fn value_in(self, registers: &X86Registers) -> Option<u64> {
        // Slots of `struct user_regs_struct`.
        let slot = match self {
            Register::R15 => 0,
            Register::R14 => 1,
            Register::R13 => 2,
            Register::R12 => 3,
            Register::Rbp => 4,
            Register::Rbx => 5,
            Register::R11 => 6,
            Register::R10 => 7,
            Register::R9 => 8,
            Register::R8 => 9,
            Register::Rax => 10,
            Register::Rcx => 11,
            Register::Rdx => 12,
            Register::Rsi => 13,
            Register::Rdi => 14,
            Register::Rip => 16,
            Register::Rsp => 19,
            Register::Other(_) => return None,
        };
        registers.0.get(slot).copied()
    }
}

impl From<gimli::Register> for Register {
    fn from(register: gimli::Register) -> Register {
        Register::from_dwarf(register.0)
    }
}

impl From<Register> for gimli::Register {
    fn from(register: Register) -> gimli::Register {
        gimli::Register(register.dwarf_number())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ksw_vmcore::cpu::REGISTER_NAMES;

    #[test]
    fn dwarf_numbers_round_trip_and_name_the_registers() {
        for n in 0..40u16 {
            assert_eq!(Register::from_dwarf(n).dwarf_number(), n);
        }
        assert_eq!(Register::from_dwarf(7), Register::Rsp);
        assert_eq!(Register::Rsp.name(), Some("rsp"));
        assert_eq!(Register::Rbp.name(), Some("rbp"));
        assert_eq!(Register::Rip.name(), Some("RA"));
        assert_eq!(Register::from_dwarf(17).name(), Some("xmm0"));
    }

    #[test]
    fn reads_the_dump_register_set_by_name() {
        let mut regs = X86Registers([0; 27]);
        for (i, v) in regs.0.iter_mut().enumerate() {
            *v = i as u64 * 0x100;
        }
        for register in NUMBERED {
            let name = match register {
                Register::Rip => "rip",
                other => other.name().expect("named"),
            };
            let slot = REGISTER_NAMES
                .iter()
                .position(|n| *n == name)
                .expect("in pt_regs");
            assert_eq!(
                register.value_in(&regs),
                Some(slot as u64 * 0x100),
                "{name}"
            );
        }
        assert_eq!(Register::Other(17).value_in(&regs), None);
    }
}
