//! The BTF reader on the real Debian 6.1 and 6.12 kernels: member offsets,
//! bitfields and sizes from the debug vmlinux's `.BTF` section, checked
//! against gdb's `ptype /o` and `print sizeof` over the same file's DWARF,
//! for every member the kernel model reads (and all their siblings);
//! and module BTF parsed split on top of it (a Debian module checked against
//! gdb on vmlinux, since Debian ships its modules without DWARF; the
//! kstackwatch fixture module against gdb on its own DWARF and against the
//! contract crate's `#[repr(C)]` mirror of its record).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ksw_analyze::btf::{Btf, Kind, Member};
use object::{Object, ObjectSection};

/// Types whose `sizeof` must agree with gdb.
const SIZES: &[&str] = &["task_struct", "pt_regs", "orc_entry"];

/// One member as gdb's `ptype /o` lays it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GdbMember {
    /// Byte offset from the start of the outermost struct.
    byte: u64,
    /// Bit inside that byte (bitfields only).
    bit: u64,
    /// The size column (a bitfield's storage unit).
    size: u64,
    /// `: N` of a bitfield.
    width: Option<u32>,
}

impl GdbMember {
    fn bit_offset(&self) -> u64 {
        self.byte * 8 + self.bit
    }
}

/// A member being collected inside an expanded struct or union.
struct Frame {
    /// Offset and size of the expanded member itself.
    head: Option<GdbMember>,
    /// Members inside, by path relative to this frame.
    members: Vec<(String, GdbMember)>,
}

/// The name a declaration line declares: `struct list_head *next;` → next,
/// `char comm[16];` → comm, `unsigned int type : 2;` → type,
/// `void (*fn)(int);` → fn.
fn declared_name(decl: &str) -> Option<(String, Option<u32>)> {
    let decl = decl.trim().strip_suffix(';')?;
    let (decl, width) = match decl.rsplit_once(" : ") {
        Some((d, w)) if !d.contains('(') => (d, w.trim().parse().ok()),
        _ => (decl, None),
    };
    let name = if let Some(start) = decl.find("(*") {
        let rest = &decl[start + 2..];
        &rest[..rest.find(')')?]
    } else {
        decl.rsplit([' ', '*']).next()?
    };
    let name = name.split('[').next()?.trim();
    (!name.is_empty()).then(|| (name.to_string(), width))
}

/// `/*   4: 4   |       4 */` → (byte 4, bit 4, size 4). A union's
/// members have no offset column (`/*        4 */`): they are at
/// `union_offset`.
fn offset_columns(comment: &str, union_offset: u64) -> Option<GdbMember> {
    let inner = comment.strip_prefix("/*")?.strip_suffix("*/")?;
    let (offset, size) = match inner.split_once('|') {
        Some((offset, size)) => (offset, size),
        None if inner.trim().bytes().all(|b| b.is_ascii_digit()) => ("", inner),
        None => return None,
    };
    let (byte, bit) = match offset.split_once(':') {
        Some((b, bit)) => (b.trim().parse().ok()?, bit.trim().parse().ok()?),
        None if offset.trim().is_empty() => (union_offset, 0),
        None => (offset.trim().parse().ok()?, 0),
    };
    Some(GdbMember {
        byte,
        bit,
        size: size.trim().parse().ok()?,
        width: None,
    })
}

/// Every `ptype /o struct NAME` in gdb's output: NAME → member path →
/// layout. Expanded members are flattened to `outer.inner` paths;
/// anonymous ones (`};`) add no path component, like C; members inside an
/// expanded array element are left out (the array is kept).
fn parse_ptype_offsets(text: &str) -> BTreeMap<String, BTreeMap<String, GdbMember>> {
    let mut layouts = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut stack: Vec<Frame> = Vec::new();
    for line in text.lines() {
        if let Some((_, rest)) = line.split_once("type = ") {
            let name = rest
                .trim_end_matches('{')
                .trim()
                .trim_start_matches("struct ")
                .trim_start_matches("union ")
                .to_string();
            current = Some(name);
            stack = vec![Frame {
                head: None,
                members: Vec::new(),
            }];
            continue;
        }
        if current.is_none() {
            continue;
        }
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix('}') {
            let Some(frame) = stack.pop() else { continue };
            let Some(parent) = stack.last_mut() else {
                // The outermost struct ends.
                if let Some(name) = current.take() {
                    layouts.insert(name, frame.members.into_iter().collect());
                }
                continue;
            };
            let name = rest.trim().trim_end_matches(';').trim();
            if let Some((array, _)) = name.split_once('[') {
                // An expanded array element: the array itself only.
                if let Some(head) = frame.head {
                    parent.members.push((array.to_string(), head));
                }
                continue;
            }
            if let (false, Some(head)) = (name.is_empty(), frame.head) {
                parent.members.push((name.to_string(), head));
            }
            for (path, member) in frame.members {
                let path = if name.is_empty() {
                    path
                } else {
                    format!("{name}.{path}")
                };
                parent.members.push((path, member));
            }
            continue;
        }
        let Some(end) = trimmed.find("*/") else {
            continue;
        };
        let (comment, decl) = trimmed.split_at(end + 2);
        let union_offset = stack.last().and_then(|f| f.head).map_or(0, |h| h.byte);
        let Some(mut member) = offset_columns(comment, union_offset) else {
            continue;
        };
        if decl.trim_end().ends_with('{') {
            stack.push(Frame {
                head: Some(member),
                members: Vec::new(),
            });
            continue;
        }
        let Some((name, width)) = declared_name(decl) else {
            continue;
        };
        member.width = width;
        if let Some(frame) = stack.last_mut() {
            frame.members.push((name, member));
        }
    }
    layouts
}

/// `$N = VALUE` lines, in order.
fn printed_values(text: &str) -> Vec<u64> {
    text.lines()
        .filter(|l| l.starts_with('$'))
        .filter_map(|l| l.split_once(" = ")?.1.trim().parse().ok())
        .collect()
}

/// The `.BTF` section of an ELF file.
fn btf_section(path: &Path) -> Vec<u8> {
    let file = std::fs::File::open(path).expect("open ELF");
    // SAFETY: the fixture files are not modified while the test runs.
    let map = unsafe { memmap2::Mmap::map(&file) }.expect("mmap ELF");
    let elf = object::File::parse(&*map).expect("parse ELF");
    let section = elf
        .section_by_name(".BTF")
        .unwrap_or_else(|| panic!("{} has no .BTF section", path.display()));
    section.uncompressed_data().expect(".BTF data").into_owned()
}

/// The vmlinux BTF of a series, timed; `None` when fixtures may be missing.
fn vmlinux_btf(series: &str) -> Option<(Btf, std::path::PathBuf)> {
    let Some(vmlinux) = common::vmlinux(series) else {
        common::missing(&format!("the Debian {series} debug vmlinux"));
        return None;
    };
    let bytes = btf_section(&vmlinux);
    let size = bytes.len();
    let started = Instant::now();
    let btf = Btf::parse(bytes).expect("parse vmlinux BTF");
    let parsed = started.elapsed();
    let task = btf.find_struct("task_struct").expect("task_struct in BTF");
    eprintln!(
        "{series}: {size} bytes of BTF, {} types, parsed in {parsed:?}, name index + first lookup in {:?}",
        btf.type_count(),
        started.elapsed() - parsed
    );
    assert!(
        btf.type_count() > 50_000,
        "vmlinux BTF has {} types",
        btf.type_count()
    );
    assert_eq!(btf.kind(task).expect("kind"), Kind::Struct);
    Some((btf, vmlinux))
}

/// Compare, for each struct, every member gdb's `ptype /o` lists (bit
/// offset, bitfield width, size) and the struct's `sizeof`, with what
/// `btf` says; the listed paths must be among them. Returns the number of
/// members compared and a line per listed path and size.
fn compare_with_gdb(
    label: &str,
    btf: &Btf,
    object: &Path,
    structs: &[(&str, &[&str])],
) -> (usize, Vec<String>) {
    // cea_exception_stacks is larger than gdb's default value limit.
    let mut commands = vec!["set max-value-size unlimited".to_string()];
    commands.extend(
        structs
            .iter()
            .map(|(name, _)| format!("ptype /o struct {name}")),
    );
    commands.extend(
        structs
            .iter()
            .map(|(name, _)| format!("print sizeof(struct {name})")),
    );
    let output = common::oracle::gdb(object, &commands);
    let layouts = parse_ptype_offsets(&output);
    let sizes = printed_values(&output);

    let mut checked = 0;
    let mut report = Vec::new();
    for (struct_name, paths) in structs {
        let layout = layouts
            .get(*struct_name)
            .unwrap_or_else(|| panic!("{label}: gdb printed no struct {struct_name}:\n{output}"));
        for path in *paths {
            assert!(
                layout.contains_key(*path),
                "{label}: gdb has no {struct_name}.{path}"
            );
        }
        for (path, truth) in layout {
            let member: Member = btf
                .offset_of(struct_name, path)
                .unwrap_or_else(|e| panic!("{label}: {struct_name}.{path}: {e}"));
            let size = btf
                .size_of(member.ty)
                .unwrap_or_else(|e| panic!("{label}: size of {struct_name}.{path}: {e}"));
            let btf_width = member.is_bitfield().then_some(member.bitfield_size);
            assert_eq!(
                (member.bit_offset, btf_width, size),
                (truth.bit_offset(), truth.width, truth.size),
                "{label}: {struct_name}.{path}: BTF (bit offset, bitfield width, size) vs gdb"
            );
            checked += 1;
            if paths.contains(&path.as_str()) {
                report.push(format!(
                    "{struct_name}.{path} = {}{}",
                    member.byte_offset(),
                    match btf_width {
                        Some(w) => format!(" (bit {} width {w})", member.bit_offset),
                        None => String::new(),
                    }
                ));
            }
        }
    }
    assert_eq!(
        sizes.len(),
        structs.len(),
        "{label}: gdb sizeof output:\n{output}"
    );
    for ((name, _), truth) in structs.iter().zip(&sizes) {
        let id = btf.find_struct(name).expect("struct in BTF");
        assert_eq!(
            btf.size_of(id).expect("size"),
            *truth,
            "{label}: sizeof(struct {name})"
        );
        report.push(format!("sizeof({name}) = {truth}"));
    }
    (checked, report)
}

/// Every member offset the kernel model reads (`KernelLayout::members_read`,
/// recorded as the model resolves them) must agree with gdb's DWARF.
fn check_against_gdb(series: &str) {
    let Some((btf, vmlinux)) = vmlinux_btf(series) else {
        return;
    };
    if !common::have("gdb") {
        common::missing("gdb (apt-get install gdb)");
        return;
    }
    let layout = ksw_analyze::kernel::KernelLayout::from_btf(&btf)
        .expect("the kernel model's layout from BTF");
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &layout.members_read {
        wanted
            .entry(m.strukt.clone())
            .or_default()
            .push(m.path.clone());
    }
    for s in SIZES {
        wanted.entry(s.to_string()).or_default();
    }
    assert!(
        layout.members_read.len() >= 30,
        "{series}: {:?}",
        layout.members_read
    );
    let structs: Vec<(&str, Vec<&str>)> = wanted
        .iter()
        .map(|(s, p)| (s.as_str(), p.iter().map(String::as_str).collect()))
        .collect();
    let structs: Vec<(&str, &[&str])> = structs.iter().map(|(s, p)| (*s, p.as_slice())).collect();
    let (checked, report) = compare_with_gdb(series, &btf, &vmlinux, &structs);
    // and the offsets the model keeps are gdb's
    let output = common::oracle::gdb(
        &vmlinux,
        &std::iter::once("set max-value-size unlimited".to_string())
            .chain(wanted.keys().map(|s| format!("ptype /o struct {s}")))
            .collect::<Vec<_>>(),
    );
    let truth = parse_ptype_offsets(&output);
    for m in &layout.members_read {
        let t = truth[&m.strukt][&m.path];
        assert_eq!(
            m.offset, t.byte,
            "{series}: the model's {}.{}",
            m.strukt, m.path
        );
    }
    eprintln!(
        "{series}: the model reads {} members; {checked} members of their structs agree with gdb; {}",
        layout.members_read.len(),
        report.join(", ")
    );

    // The orc_entry `type` bitfield is an unsigned int of a few bits.
    let orc_type = btf.offset_of("orc_entry", "type").expect("orc_entry.type");
    assert!(orc_type.is_bitfield());
    assert_eq!(btf.type_name(orc_type.ty).as_deref(), Some("unsigned int"));
}

#[test]
fn vmlinux_btf_offsets_match_gdb_6_1() {
    check_against_gdb("6.1");
}

#[test]
fn vmlinux_btf_offsets_match_gdb_6_12() {
    check_against_gdb("6.12");
}

/// A Debian module (af_key, shipped without DWARF), split on vmlinux: its
/// own `struct pfkey_sock` starts with a vmlinux `struct sock`, so its next
/// member sits at gdb's `sizeof(struct sock)` over vmlinux's DWARF.
#[test]
fn debian_module_btf_splits_on_vmlinux_6_1() {
    let Some((vmlinux_btf, vmlinux)) = vmlinux_btf("6.1") else {
        return;
    };
    let module = common::kernel_root("6.1").and_then(|root| {
        let modules = std::fs::read_dir(root.join("lib/modules")).ok()?;
        modules
            .flatten()
            .map(|release| release.path().join("kernel/net/key/af_key.ko"))
            .find(|p| p.is_file())
    });
    let Some(module) = module else {
        common::missing("af_key.ko of the Debian 6.1 kernel");
        return;
    };
    if !common::have("gdb") {
        common::missing("gdb (apt-get install gdb)");
        return;
    }
    let base = Arc::new(vmlinux_btf);
    let btf = Btf::parse_split(btf_section(&module), base.clone()).expect("parse module BTF");
    assert!(btf.type_count() > base.type_count());
    let pfkey = btf
        .find_struct("pfkey_sock")
        .expect("pfkey_sock in af_key's BTF");
    assert!(
        pfkey.0 > base.type_count(),
        "pfkey_sock is the module's own type"
    );
    assert_eq!(base.find_struct("pfkey_sock"), None);
    let sk = btf.offset_of("pfkey_sock", "sk").expect("sk");
    assert_eq!(sk.bit_offset, 0);
    assert!(
        sk.ty.0 <= base.type_count(),
        "sk's type is vmlinux's struct sock"
    );
    assert_eq!(btf.type_name(sk.ty).as_deref(), Some("sock"));

    let sizes = printed_values(&common::oracle::gdb(
        &vmlinux,
        &["print sizeof(struct sock)".to_string()],
    ));
    let [sock_size] = sizes[..] else {
        panic!("gdb printed {sizes:?} for sizeof(struct sock)");
    };
    let registered = btf
        .offset_of("pfkey_sock", "registered")
        .expect("registered");
    let promisc = btf.offset_of("pfkey_sock", "promisc").expect("promisc");
    assert_eq!(registered.byte_offset(), sock_size);
    assert_eq!(promisc.byte_offset(), sock_size + 4);
    // Members of the module's anonymous struct `dump`, through a path.
    let dump = btf.offset_of("pfkey_sock", "dump").expect("dump");
    let portid = btf
        .offset_of("pfkey_sock", "dump.msg_portid")
        .expect("dump.msg_portid");
    assert_eq!(portid.byte_offset(), dump.byte_offset() + 4);
    btf.offset_of("pfkey_sock", "dump.u.state")
        .expect("dump.u.state");
    eprintln!(
        "af_key: {} own types after vmlinux's {}; pfkey_sock is type {}, registered at {} = gdb sizeof(struct sock) {sock_size}, dump at {}, size {}",
        btf.type_count() - base.type_count(),
        base.type_count(),
        pfkey.0,
        registered.byte_offset(),
        dump.byte_offset(),
        btf.size_of(pfkey).expect("size")
    );
}

/// kstackwatch.ko as built for 6.12 (with DWARF), split on vmlinux: its
/// structs against gdb over the module, and `struct ksw_catch` against the
/// contract crate's `#[repr(C)]` mirror.
#[test]
fn kstackwatch_module_btf_matches_gdb_and_contract_6_12() {
    use kstackwatch_contract::record::{Catch, CatchLog, Regs};
    use std::mem::{offset_of, size_of};

    let Some((vmlinux_btf, _)) = vmlinux_btf("6.12") else {
        return;
    };
    let module = common::cache_dir().join("fixtures/6.12/kstackwatch/modules/kstackwatch.ko");
    if !module.is_file() {
        common::missing("kstackwatch.ko of the 6.12 kstackwatch fixture");
        return;
    }
    if !common::have("gdb") {
        common::missing("gdb (apt-get install gdb)");
        return;
    }
    let base = Arc::new(vmlinux_btf);
    let btf = Btf::parse_split(btf_section(&module), base.clone()).expect("parse kstackwatch BTF");
    let structs: &[(&str, &[&str])] = &[
        ("ksw_catch", &["seq", "regs", "regs.sp"]),
        ("ksw_catch_log", &["records"]),
        (
            "ksw_state",
            &["cfg.sp_offset", "pending_ipis", "stats.catches"],
        ),
        ("ksw_wp", &["busy"]),
    ];
    let (checked, report) = compare_with_gdb("kstackwatch.ko", &btf, &module, structs);

    let catch = btf.find_struct("ksw_catch").expect("ksw_catch");
    assert!(
        catch.0 > base.type_count(),
        "ksw_catch is the module's own type"
    );
    let pending = btf
        .offset_of("ksw_state", "pending_ipis")
        .expect("pending_ipis");
    assert!(
        pending.ty.0 <= base.type_count(),
        "atomic_t comes from vmlinux"
    );

    assert_eq!(
        btf.size_of(catch).expect("size") as usize,
        size_of::<Catch>()
    );
    let expected = [
        ("seq", offset_of!(Catch, seq)),
        ("cpu", offset_of!(Catch, cpu)),
        ("func_name", offset_of!(Catch, func_name)),
        ("watch_addr", offset_of!(Catch, watch_addr)),
        ("writer_pid", offset_of!(Catch, writer_pid)),
        ("config", offset_of!(Catch, config)),
        ("regs", offset_of!(Catch, regs)),
        ("regs.sp", offset_of!(Catch, regs) + offset_of!(Regs, sp)),
    ];
    for (path, offset) in expected {
        let member = btf.offset_of("ksw_catch", path).expect(path);
        assert_eq!(
            member.byte_offset() as usize,
            offset,
            "ksw_catch.{path} vs the contract"
        );
    }
    let records = btf.offset_of("ksw_catch_log", "records").expect("records");
    assert_eq!(
        records.byte_offset() as usize,
        offset_of!(CatchLog, records)
    );
    assert_eq!(
        btf.size_of(records.ty).expect("ring size") as usize,
        size_of::<CatchLog>() - offset_of!(CatchLog, records)
    );
    eprintln!(
        "kstackwatch.ko: {} own types; {checked} members agree with gdb and the contract where it has them; {}",
        btf.type_count() - base.type_count(),
        report.join(", ")
    );
}

#[test]
fn gdb_ptype_offsets_are_parsed() {
    let text = "\
/* offset      |    size */  type = struct outer {
/*      0      |       2 */    s16 sp_offset;
/*      4: 4   |       4 */    unsigned int bp_reg : 4;
/*      8      |      16 */    struct list_head {
/*      8      |       8 */        struct list_head *next;
/*     16      |       8 */        struct list_head *prev;

                                   /* total size (bytes):   16 */
                               } tasks;
/*     24      |       8 */    union {
/*                     8 */        void (*fn)(int);
/*                     4 */        int arr[1];
                               };
/*     32      |      16 */    struct {
/*     32      |       8 */        long x;
                               } pair[2];
/* XXX  4-byte hole      */

                               /* total size (bytes):   48 */
                             }
$1 = 48
";
    let layouts = parse_ptype_offsets(text);
    let outer = &layouts["outer"];
    let paths: Vec<&str> = outer.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "arr",
            "bp_reg",
            "fn",
            "pair",
            "sp_offset",
            "tasks",
            "tasks.next",
            "tasks.prev"
        ]
    );
    assert_eq!(outer["bp_reg"].bit_offset(), 36);
    assert_eq!(outer["bp_reg"].width, Some(4));
    assert_eq!(outer["tasks.prev"].byte, 16);
    assert_eq!(outer["tasks"].size, 16);
    assert_eq!(
        (outer["fn"].byte, outer["arr"].byte, outer["arr"].size),
        (24, 24, 4)
    );
    assert_eq!(printed_values(text), [48]);
}

/// One interface, two sources: the kernel model's layout read through
/// BTF and through the same vmlinux's DWARF is the same, every member it
/// reads included.
fn layout_from_both_sources(series: &str) {
    let Some((btf, vmlinux)) = vmlinux_btf(series) else {
        return;
    };
    let from_btf = ksw_analyze::kernel::KernelLayout::from_btf(&btf).expect("layout from BTF");
    let file = ksw_analyze::locate::open(&vmlinux).expect("open vmlinux");
    let image = ksw_analyze::ElfImage::parse(&file).expect("parse vmlinux");
    let sections = ksw_analyze::DebugSections::load(&image).expect("DWARF sections");
    let dwarf = ksw_analyze::kernel::types::DwarfKernelTypes::new(&sections).expect("DWARF");
    let started = Instant::now();
    let from_dwarf =
        ksw_analyze::kernel::KernelLayout::from_types(&dwarf).expect("layout from DWARF");
    eprintln!(
        "{series}: {} members read through DWARF in {:?}, equal to BTF's",
        from_dwarf.members_read.len(),
        started.elapsed()
    );
    assert_eq!(from_btf, from_dwarf, "{series}");
    assert!(from_btf.members_read.len() >= 30);
}

#[test]
fn the_model_layout_is_the_same_from_btf_and_dwarf_6_1() {
    layout_from_both_sources("6.1");
}

#[test]
fn the_model_layout_is_the_same_from_btf_and_dwarf_6_12() {
    layout_from_both_sources("6.12");
}
