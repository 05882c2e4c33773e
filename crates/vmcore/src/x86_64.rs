//! x86_64 address translation: 4- and 5-level page-table walks.
//!
//! The walk starts at `swapper_pg_dir` (`init_top_pgt`), whose physical
//! address is computed from the kernel-text mapping (`__START_KERNEL_map`
//! plus `phys_base`), so the top table is never read through itself. Every
//! table is read physically. 1 GiB and 2 MiB pages end the walk early. The
//! AMD SME encryption bit (`NUMBER(sme_mask)`) is stripped from entries.
//! This one walk covers the direct map (wherever KASLR put
//! `page_offset_base`), kernel text, vmalloc'd stacks and the module area.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::addr::{PhysAddr, VirtAddr};
use crate::error::{Error, Result};
use crate::memory::PhysicalMemory;
use crate::vmcoreinfo::Vmcoreinfo;

/// The base of the kernel-text mapping, `__START_KERNEL_map`.
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
const PRESENT: u64 = 1;
const PSE: u64 = 1 << 7;
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The result of translating one virtual address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Translation {
    /// The physical address.
    pub phys: PhysAddr,
    /// The size of the page that maps it (4 KiB, 2 MiB or 1 GiB).
    pub page_size: u64,
}

/// Walks the kernel page tables of an x86_64 dump.
#[derive(Debug)]
pub struct PageTableWalker {
    top: PhysAddr,
    levels: u8,
    entry_mask: u64,
    /// Virtual page (4 KiB) → (physical page, size of the mapping), for
    /// pages already walked.
    tlb: Mutex<HashMap<u64, (u64, u64)>>,
}

impl PageTableWalker {
    /// A walker starting from the top-level table at physical `top`.
    pub fn new(top: PhysAddr, levels: u8, sme_mask: u64) -> Self {
        PageTableWalker {
            top,
            levels,
            entry_mask: ADDRESS_MASK & !sme_mask,
            tlb: Mutex::new(HashMap::new()),
        }
    }

    /// The kernel's walker, from VMCOREINFO's `SYMBOL(swapper_pg_dir)` (or
    /// `init_top_pgt`), `NUMBER(phys_base)`, `NUMBER(pgtable_l5_enabled)`
    /// and `NUMBER(sme_mask)`.
    pub fn from_vmcoreinfo(info: &Vmcoreinfo) -> Result<Self> {
        let pgd = info
            .symbol("init_top_pgt")
            .or_else(|| info.symbol("swapper_pg_dir"))
            .ok_or_else(|| {
                Error::Vmcoreinfo("no SYMBOL(swapper_pg_dir) or SYMBOL(init_top_pgt)".into())
            })?;
        let phys_base = info
            .number("phys_base")
            .ok_or_else(|| Error::Vmcoreinfo("no NUMBER(phys_base)".into()))?;
        if pgd.0 < START_KERNEL_MAP {
            return Err(Error::Vmcoreinfo(format!(
                "swapper_pg_dir {pgd} is not in the kernel-text mapping"
            )));
        }
        let top = PhysAddr((pgd.0 - START_KERNEL_MAP).wrapping_add(phys_base as u64));
        let sme_mask = info.number("sme_mask").unwrap_or(0) as u64;
        Ok(Self::new(top, info.page_table_levels(), sme_mask))
    }

    /// The number of levels, 4 or 5.
    pub fn levels(&self) -> u8 {
        self.levels
    }

    /// The physical address of the top-level table.
    pub fn top(&self) -> PhysAddr {
        self.top
    }

    /// Translates `va`, reading tables from `mem`.
    pub fn translate(&self, mem: &dyn PhysicalMemory, va: VirtAddr) -> Result<Translation> {
        let vpage = va.0 >> 12;
        if let Ok(tlb) = self.tlb.lock()
            && let Some(&(ppage, page_size)) = tlb.get(&vpage)
        {
            return Ok(Translation {
                phys: PhysAddr((ppage << 12) | (va.0 & 0xfff)),
                page_size,
            });
        }
        let t = self.walk(mem, va)?;
        if let Ok(mut tlb) = self.tlb.lock() {
            if tlb.len() > 1 << 16 {
                tlb.clear();
            }
            tlb.insert(vpage, (t.phys.0 >> 12, t.page_size));
        }
        Ok(t)
    }

    fn walk(&self, mem: &dyn PhysicalMemory, va: VirtAddr) -> Result<Translation> {
        let bits = 12 + 9 * u32::from(self.levels);
        // Canonical: bits [bits-1, 63] all equal.
        let upper = (va.0 as i64) >> (bits - 1);
        if upper != 0 && upper != -1 {
            return Err(Error::Unmapped {
                addr: va,
                reason: "non-canonical address",
            });
        }
        let mut table = self.top.0;
        for level in (1..=self.levels).rev() {
            let shift = 12 + 9 * (u32::from(level) - 1);
            let index = (va.0 >> shift) & 511;
            let mut raw = [0u8; 8];
            mem.read_phys(PhysAddr(table + index * 8), &mut raw)
                .map_err(|e| match e {
                    Error::Excluded(_) | Error::NotInDump(_) => Error::Unmapped {
                        addr: va,
                        reason: "page table not in dump",
                    },
                    other => other,
                })?;
            let entry = u64::from_le_bytes(raw);
            if entry & PRESENT == 0 {
                return Err(Error::Unmapped {
                    addr: va,
                    reason: level_name(level),
                });
            }
            if level == 1 || ((level == 2 || level == 3) && entry & PSE != 0) {
                let size = 1u64 << shift;
                let base = entry & self.entry_mask & !(size - 1);
                return Ok(Translation {
                    phys: PhysAddr(base | (va.0 & (size - 1))),
                    page_size: size,
                });
            }
            table = entry & self.entry_mask;
        }
        Err(Error::Unmapped {
            addr: va,
            reason: "page-table walk did not end",
        })
    }
}

fn level_name(level: u8) -> &'static str {
    match level {
        5 => "PGD entry not present (5-level)",
        4 => "P4D/PGD entry not present",
        3 => "PUD entry not present",
        2 => "PMD entry not present",
        _ => "PTE not present",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Physical memory made of a sparse set of pages.
    struct Pages(HashMap<u64, Vec<u8>>);

    impl PhysicalMemory for Pages {
        fn page_size(&self) -> u64 {
            4096
        }
        fn read_phys(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<()> {
            let page = self.0.get(&(addr.0 >> 12)).ok_or(Error::NotInDump(addr))?;
            let off = (addr.0 & 0xfff) as usize;
            buf.copy_from_slice(&page[off..off + buf.len()]);
            Ok(())
        }
    }

    fn set(p: &mut Pages, table_pfn: u64, index: u64, value: u64) {
        let page = p.0.entry(table_pfn).or_insert_with(|| vec![0; 4096]);
        page[(index * 8) as usize..(index * 8 + 8) as usize].copy_from_slice(&value.to_le_bytes());
    }

    fn info(text: &str) -> Vmcoreinfo {
        Vmcoreinfo::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn the_walker_comes_from_vmcoreinfo() {
        let w = PageTableWalker::from_vmcoreinfo(&info(
            "SYMBOL(swapper_pg_dir)=ffffffff8260a000\nSYMBOL(init_top_pgt)=ffffffff8260b000\n\
             NUMBER(phys_base)=-2147483648\nNUMBER(pgtable_l5_enabled)=1\n",
        ))
        .unwrap();
        // init_top_pgt wins; phys_base may be negative.
        assert_eq!(w.top(), PhysAddr(0x260b000u64.wrapping_sub(0x8000_0000)));
        assert_eq!(w.levels(), 5);
        let w = PageTableWalker::from_vmcoreinfo(&info(
            "SYMBOL(swapper_pg_dir)=ffffffff8260a000\nNUMBER(phys_base)=16777216\n\
             NUMBER(pgtable_l5_enabled)=0\nNUMBER(sme_mask)=140737488355328\n",
        ))
        .unwrap();
        assert_eq!(w.top(), PhysAddr(0x360a000));
        assert_eq!(w.levels(), 4);
        assert_eq!(w.entry_mask, ADDRESS_MASK & !(1 << 47));
        for bad in [
            "NUMBER(phys_base)=0\n",
            "SYMBOL(swapper_pg_dir)=ffffffff8260a000\n",
            "SYMBOL(swapper_pg_dir)=7fffffff8260a000\nNUMBER(phys_base)=0\n",
        ] {
            assert!(
                matches!(
                    PageTableWalker::from_vmcoreinfo(&info(bad)),
                    Err(Error::Vmcoreinfo(_))
                ),
                "{bad:?}"
            );
        }
        let w = PageTableWalker::from_vmcoreinfo(&info(
            "SYMBOL(swapper_pg_dir)=ffffffff80000000\nNUMBER(phys_base)=4096\n",
        ))
        .unwrap();
        assert_eq!(w.top(), PhysAddr(0x1000));
    }

    #[test]
    fn each_level_names_the_missing_entry() {
        for levels in [4u8, 5] {
            let va: u64 = 0xffff_c900_1234_5678;
            let idx = |l: u32| (va >> (12 + 9 * (l - 1))) & 511;
            for missing in 1..=u32::from(levels) {
                let mut p = Pages(HashMap::new());
                // level l's table is at pfn 1, 2, ... from the top down
                for (pfn, l) in (1..).zip((1..=u32::from(levels)).rev()) {
                    if l == missing {
                        // An entry with everything but the present bit.
                        set(&mut p, pfn, idx(l), ((pfn + 1) << 12) | 0x62);
                        break;
                    }
                    set(&mut p, pfn, idx(l), ((pfn + 1) << 12) | 0x63);
                }
                let w = PageTableWalker::new(PhysAddr(0x1000), levels, 0);
                let want = match (missing, levels) {
                    (5, _) => "PGD entry not present (5-level)",
                    (4, _) => "P4D/PGD entry not present",
                    (3, _) => "PUD entry not present",
                    (2, _) => "PMD entry not present",
                    _ => "PTE not present",
                };
                match w.translate(&p, VirtAddr(va)) {
                    Err(Error::Unmapped { reason, addr }) => {
                        assert_eq!((reason, addr), (want, VirtAddr(va)), "{levels} levels")
                    }
                    other => panic!("{levels} levels, level {missing}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn large_page_bits_count_only_at_pud_and_pmd() {
        // PSE set in a P4D (4 levels) or PGD entry means nothing: the walk
        // goes on down to the PTE.
        let va: u64 = 0xffff_8880_0020_1000;
        let idx = |l: u32| (va >> (12 + 9 * (l - 1))) & 511;
        let mut p = Pages(HashMap::new());
        set(&mut p, 1, idx(4), (2 << 12) | PSE | 0x63);
        set(&mut p, 2, idx(3), (3 << 12) | 0x63);
        set(&mut p, 3, idx(2), (4 << 12) | 0x63);
        set(&mut p, 4, idx(1), (0x99 << 12) | PSE | 0x63);
        let w = PageTableWalker::new(PhysAddr(0x1000), 4, 0);
        assert_eq!(
            w.translate(&p, VirtAddr(va)).unwrap(),
            Translation {
                phys: PhysAddr(0x99000),
                page_size: 4096
            }
        );
        // Cached: the same answer for another address in the page, even
        // after the tables are gone.
        p.0.clear();
        assert_eq!(
            w.translate(&p, VirtAddr(va + 0x123)).unwrap().phys,
            PhysAddr(0x99123)
        );
        // A table the dump lacks is "unmapped"; other read errors pass
        // through.
        let w = PageTableWalker::new(PhysAddr(0x1000), 4, 0);
        assert!(matches!(
            w.translate(&p, VirtAddr(va)),
            Err(Error::Unmapped {
                reason: "page table not in dump",
                ..
            })
        ));
        struct Broken;
        impl PhysicalMemory for Broken {
            fn page_size(&self) -> u64 {
                4096
            }
            fn read_phys(&self, addr: PhysAddr, _: &mut [u8]) -> Result<()> {
                Err(Error::CorruptPage {
                    pfn: addr.pfn(4096),
                    what: "test".into(),
                })
            }
        }
        assert!(matches!(
            w.translate(&Broken, VirtAddr(va)),
            Err(Error::CorruptPage { .. })
        ));
        struct Excluding;
        impl PhysicalMemory for Excluding {
            fn page_size(&self) -> u64 {
                4096
            }
            fn read_phys(&self, addr: PhysAddr, _: &mut [u8]) -> Result<()> {
                Err(Error::Excluded(addr.pfn(4096)))
            }
        }
        assert!(matches!(
            w.translate(&Excluding, VirtAddr(va)),
            Err(Error::Unmapped {
                reason: "page table not in dump",
                ..
            })
        ));
    }

    #[test]
    fn the_translation_cache_keeps_65537_pages_before_it_starts_over() {
        // One 1 GiB page maps every address below; the walker caches each
        // 4 KiB page it translated. With the tables gone, only cached pages
        // still translate.
        let mut p = Pages(HashMap::new());
        let base: u64 = 0xffff_8880_0000_0000;
        let idx = |l: u32| (base >> (12 + 9 * (l - 1))) & 511;
        set(&mut p, 1, idx(4), (2 << 12) | 0x63);
        set(&mut p, 2, idx(3), 0x4000_0000 | PSE | 0x63);
        let w = PageTableWalker::new(PhysAddr(0x1000), 4, 0);
        for i in 0..=(1u64 << 16) {
            let t = w.translate(&p, VirtAddr(base + (i << 12))).unwrap();
            assert_eq!(t.phys, PhysAddr(0x4000_0000 + (i << 12)));
        }
        p.0.clear();
        assert_eq!(
            w.translate(&p, VirtAddr(base + 8)).unwrap().phys,
            PhysAddr(0x4000_0008)
        );
        // Any smaller limit would have dropped the first page by now; a
        // cache that starts over on every miss keeps only the last page.
        let w = PageTableWalker::new(PhysAddr(0x1000), 4, 0);
        set(&mut p, 1, idx(4), (2 << 12) | 0x63);
        set(&mut p, 2, idx(3), 0x4000_0000 | PSE | 0x63);
        w.translate(&p, VirtAddr(base)).unwrap();
        w.translate(&p, VirtAddr(base + 4096)).unwrap();
        p.0.clear();
        assert!(
            w.translate(&p, VirtAddr(base)).is_ok(),
            "two pages are kept"
        );
    }

    #[test]
    fn walks_4k_2m_and_1g_pages_at_both_depths() {
        for levels in [4u8, 5] {
            let mut p = Pages(HashMap::new());
            let va: u64 = 0xffff_c900_1234_5678; // vmalloc-ish, 4 KiB page
            let idx = |va: u64, l: u32| (va >> (12 + 9 * (l - 1))) & 511;
            // top table at pfn 1, then 2, 3, 4, (5)
            let mut pfn = 1;
            for l in (2..=u32::from(levels)).rev() {
                set(&mut p, pfn, idx(va, l), ((pfn + 1) << 12) | 0x63);
                pfn += 1;
            }
            set(&mut p, pfn, idx(va, 1), (0xabcde << 12) | (1 << 63) | 0x63);
            let w = PageTableWalker::new(PhysAddr(0x1000), levels, 0);
            let t = w.translate(&p, VirtAddr(va)).unwrap();
            assert_eq!(
                t,
                Translation {
                    phys: PhysAddr(0xabcde678),
                    page_size: 4096
                },
                "levels {levels}"
            );
            // A 2 MiB page with the PAT bit (12) set must not leak into the address.
            let va2 = va + (1 << 21);
            set(
                &mut p,
                pfn - 1,
                idx(va2, 2),
                (0x4000_0000 | (1 << 12)) | PSE | 0x63,
            );
            let t = w.translate(&p, VirtAddr(va2)).unwrap();
            assert_eq!(t.phys, PhysAddr(0x4000_0000 | (va2 & 0x1f_ffff)));
            assert_eq!(t.page_size, 2 << 20);
            // A 1 GiB page.
            let va3 = va + (1 << 30);
            set(&mut p, pfn - 2, idx(va3, 3), 0x8000_0000 | PSE | 0x63);
            let t = w.translate(&p, VirtAddr(va3)).unwrap();
            assert_eq!(t.phys, PhysAddr(0x8000_0000 | (va3 & 0x3fff_ffff)));
            // A missing PTE.
            let err = w.translate(&p, VirtAddr(va + 4096)).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Unmapped {
                        reason: "PTE not present",
                        ..
                    }
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn rejects_non_canonical_addresses() {
        let p = Pages(HashMap::new());
        let w = PageTableWalker::new(PhysAddr(0x1000), 4, 0);
        assert!(matches!(
            w.translate(&p, VirtAddr(0x0000_8000_0000_0000)),
            Err(Error::Unmapped {
                reason: "non-canonical address",
                ..
            })
        ));
        // Canonical under 5 levels but not under 4.
        let w5 = PageTableWalker::new(PhysAddr(0x1000), 5, 0);
        assert!(
            matches!(w5.translate(&p, VirtAddr(0xff00_0000_0000_0000)), Err(Error::Unmapped { reason, .. }) if reason != "non-canonical address")
        );
        assert!(matches!(
            w.translate(&p, VirtAddr(0xff00_0000_0000_0000)),
            Err(Error::Unmapped {
                reason: "non-canonical address",
                ..
            })
        ));
    }

    #[test]
    fn strips_the_sme_bit() {
        let mut p = Pages(HashMap::new());
        let sme = 1u64 << 47;
        let va: u64 = 0xffff_8880_0000_1000;
        let idx = |l: u32| (va >> (12 + 9 * (l - 1))) & 511;
        set(&mut p, 1, idx(4), (2 << 12) | sme | 0x63);
        set(&mut p, 2, idx(3), (3 << 12) | sme | 0x63);
        set(&mut p, 3, idx(2), (4 << 12) | sme | 0x63);
        set(&mut p, 4, idx(1), (0x777 << 12) | sme | 0x63);
        let w = PageTableWalker::new(PhysAddr(0x1000), 4, sme);
        assert_eq!(
            w.translate(&p, VirtAddr(va)).unwrap().phys,
            PhysAddr(0x777000)
        );
    }
}
