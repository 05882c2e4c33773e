//! The memory interfaces every source ends in.
//!
//! Each dump format gives [`PhysicalMemory`]: "the bytes of physical page
//! N", or a reason why not. [`KernelMemory`] adds kernel virtual addresses
//! on top (through the page tables); the analysis crates and the unwinder
//! only ever see it, so a test can implement it over a byte array.

use crate::addr::{PhysAddr, VirtAddr};
use crate::error::Result;

/// Physical memory of a dump or live system.
pub trait PhysicalMemory: Send + Sync {
    /// The page size in bytes (4096 on x86_64).
    fn page_size(&self) -> u64;

    /// Fills `buf` with the bytes at physical address `addr`. The range may
    /// span pages. A failure names the first page that could not be read.
    fn read_phys(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<()>;
}

/// Kernel virtual memory.
pub trait KernelMemory {
    /// Fills `buf` with the bytes at kernel virtual address `addr`.
    fn read_virt(&self, addr: VirtAddr, buf: &mut [u8]) -> Result<()>;

    /// Reads a little-endian `u64`.
    fn read_u64(&self, addr: VirtAddr) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read_virt(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads a little-endian `u32`.
    fn read_u32(&self, addr: VirtAddr) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read_virt(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads a little-endian `u16`.
    fn read_u16(&self, addr: VirtAddr) -> Result<u16> {
        let mut b = [0u8; 2];
        self.read_virt(addr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads `len` bytes into a new vector.
    fn read_vec(&self, addr: VirtAddr, len: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read_virt(addr, &mut v)?;
        Ok(v)
    }
}

impl<T: KernelMemory + ?Sized> KernelMemory for &T {
    fn read_virt(&self, addr: VirtAddr, buf: &mut [u8]) -> Result<()> {
        (**self).read_virt(addr, buf)
    }
}

impl<T: KernelMemory + ?Sized> KernelMemory for std::sync::Arc<T> {
    fn read_virt(&self, addr: VirtAddr, buf: &mut [u8]) -> Result<()> {
        (**self).read_virt(addr, buf)
    }
}

impl<T: KernelMemory + ?Sized> KernelMemory for Box<T> {
    fn read_virt(&self, addr: VirtAddr, buf: &mut [u8]) -> Result<()> {
        (**self).read_virt(addr, buf)
    }
}

/// Kernel memory made of a few byte regions at chosen virtual addresses:
/// for tests of the code above this crate, which then needs no dump. A
/// read that leaves the regions fails with [`crate::Error::Unmapped`].
#[derive(Debug, Clone, Default)]
pub struct RegionMemory {
    regions: Vec<(VirtAddr, Vec<u8>)>,
}

impl RegionMemory {
    /// Memory with no regions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `bytes` at `addr` (a later region wins where they overlap).
    pub fn with(mut self, addr: VirtAddr, bytes: Vec<u8>) -> Self {
        self.regions.push((addr, bytes));
        self
    }

    fn byte(&self, addr: u64) -> Option<u8> {
        self.regions.iter().rev().find_map(|(at, bytes)| {
            let off = addr.checked_sub(at.0)?;
            bytes.get(usize::try_from(off).ok()?).copied()
        })
    }
}

impl KernelMemory for RegionMemory {
    fn read_virt(&self, addr: VirtAddr, buf: &mut [u8]) -> Result<()> {
        for (i, b) in buf.iter_mut().enumerate() {
            let a = addr.0.wrapping_add(i as u64);
            *b = self.byte(a).ok_or(crate::error::Error::Unmapped {
                addr: VirtAddr(a),
                reason: "outside the test regions",
            })?;
        }
        Ok(())
    }
}
