//! Newtypes for the address spaces a dump reader deals with.
//!
//! A raw `u64` never crosses the crate boundary: a kernel virtual address,
//! a physical address, a page frame number and an offset into the dump
//! file are different things, and the type says which one is meant.

use std::fmt;

macro_rules! address_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw value.
            pub fn get(self) -> u64 {
                self.0
            }

            /// This address moved forward by `bytes`, or `None` on overflow.
            pub fn checked_add(self, bytes: u64) -> Option<Self> {
                self.0.checked_add(bytes).map($name)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }

        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

address_newtype!(
    /// A kernel virtual address, as the running kernel used it (after KASLR).
    VirtAddr
);
address_newtype!(
    /// A physical (for a guest: guest-physical) memory address.
    PhysAddr
);
address_newtype!(
    /// A page frame number: a physical address divided by the page size.
    Pfn
);
address_newtype!(
    /// A byte offset into a dump file (for a flattened dump: into the
    /// rearranged file it describes).
    FileOffset
);

impl Pfn {
    /// The physical address of the first byte of this page.
    pub fn to_phys(self, page_size: u64) -> PhysAddr {
        PhysAddr(self.0.wrapping_mul(page_size))
    }
}

impl PhysAddr {
    /// The page this address lies in.
    pub fn pfn(self, page_size: u64) -> Pfn {
        Pfn(self.0 / page_size)
    }
}
