//! `resolve` and the debug-file checks on the real Debian kernels
//! (6.1 with `.rela.debug_*`, 6.12 with `endbr64` and no debug relocations),
//! and on a real `.ko`.

mod common;

use std::path::Path;

use ksw_analyze::locate::{self, Expected};
use ksw_analyze::{DebugFile, ElfImage, Error, ResolveRequest, frame_layout, resolve};

fn request(function: &str, variable: &str) -> ResolveRequest {
    ResolveRequest {
        function: function.into(),
        variable: Some(variable.into()),
        ..ResolveRequest::default()
    }
}

fn open(series: &str) -> Option<(DebugFile, String)> {
    match common::vmlinux(series) {
        Some(path) => {
            let release = common::release_of(&path);
            Some((DebugFile::open(&path).expect("open vmlinux"), release))
        }
        None => {
            common::missing(&format!("the Debian {series} debug vmlinux"));
            None
        }
    }
}

#[test]
fn ambiguous_copied_and_register_only_functions_6_1() {
    let Some((vmlinux, _)) = open("6.1") else {
        return;
    };
    let files = [&vmlinux];
    // The same static name in several units.
    match resolve(&files, &request("__list_del_entry", "entry")) {
        Err(Error::AmbiguousFunction { candidates, .. }) => {
            assert!(candidates.len() > 2, "{candidates:?}");
            assert!(
                candidates.iter().all(|c| c.defined_in.ends_with(".c")),
                "{candidates:?}"
            );
        }
        other => panic!("expected ambiguity: {other:?}"),
    }
    // An original plus a .constprop copy.
    match resolve(&files, &request("jhash", "key")) {
        Err(Error::AmbiguousFunction { candidates, .. }) => {
            assert!(
                candidates.iter().any(|c| c.symbol == "jhash.constprop.0"),
                "{candidates:?}"
            );
        }
        other => panic!("expected ambiguity: {other:?}"),
    }
    // Only an .isra copy: used, and said so.
    let layout = frame_layout(&files, "match_id").expect("match_id");
    assert_eq!(layout.symbol, "match_id.isra.0");
    // Register-only and location-list variables are refused with the reason.
    match resolve(&files, &request("ksys_write", "fd")) {
        Err(e @ Error::NotOnStack { .. }) => assert!(e.to_string().contains("register"), "{e}"),
        other => panic!("register-only: {other:?}"),
    }
    // A function with a .cold part resolves, with a caveat.
    let r = resolve(&files, &request("__alloc_contig_migrate_range", "mtc"))
        .expect("function with .cold");
    assert!(
        r.caveats.iter().any(|c| c.contains(".cold")),
        "{:?}",
        r.caveats
    );
    // A spilled variable whose location list leaves the slot is refused.
    match resolve(&files, &request("___neigh_create", "tbl")) {
        Err(e @ Error::NotOnStack { .. }) => {
            assert!(e.to_string().contains("location list"), "{e}")
        }
        other => panic!("partly spilled variable: {other:?}"),
    }
    let r = resolve(&files, &request("__do_sys_newuname", "tmp")).expect("newuname");
    assert_eq!(r.watch.watch_len, 8);
    let canary = resolve(
        &files,
        &ResolveRequest {
            function: "__do_sys_newuname".into(),
            canary: true,
            ..ResolveRequest::default()
        },
    )
    .expect("canary");
    // The canary sits above the locals, below the saved registers.
    assert!(
        canary.cfa_offset < 0 && canary.cfa_offset > r.cfa_offset,
        "{canary:?}"
    );
    assert!(
        canary.probe_instruction.starts_with("mov %rax,"),
        "{}",
        canary.probe_instruction
    );
}

#[test]
fn mismatched_vmlinux_is_refused() {
    let Some((vmlinux, release)) = open("6.1") else {
        return;
    };
    let image = ElfImage::parse(&vmlinux).expect("parse");
    assert!(image.build_id().is_some_and(|id| id.len() == 20));
    let own = Expected {
        release: Some(release.clone()),
        build_id: None,
    };
    locate::check_vmlinux(&image, &own).expect("its own release matches");
    let other = Expected {
        release: Some("6.12.117+deb12-cloud-amd64".into()),
        build_id: None,
    };
    match locate::check_vmlinux(&image, &other) {
        Err(e @ Error::Mismatch { .. }) => assert!(e.to_string().contains("6.1.0"), "{e}"),
        other => panic!("expected a mismatch: {other:?}"),
    }
    let wrong_id = Expected {
        release: None,
        build_id: Some(vec![0xab; 20]),
    };
    assert!(matches!(
        locate::check_vmlinux(&image, &wrong_id),
        Err(Error::Mismatch { .. })
    ));
    // Discovery by release under an unpacked package root.
    let root = common::kernel_root("6.1").expect("root");
    let found = locate::find_vmlinux(&root, &own).expect("found by release");
    assert!(found.ends_with(format!("vmlinux-{release}")));
    assert!(locate::find_vmlinux(&root, &other).is_err());
}

#[test]
fn kernel_6_12_with_ibt_resolves() {
    let Some((vmlinux, _)) = open("6.12") else {
        return;
    };
    let image = ElfImage::parse(&vmlinux).expect("parse");
    assert!(
        image
            .kernel_release()
            .is_some_and(|r| r.starts_with("6.12"))
    );
    let r = resolve(&[&vmlinux], &request("do_sys_openat2", "op")).expect("openat2");
    // Never on the endbr64 or the fentry site. (Its `so=` is checked
    // against gdb + readelf in gdb_oracle.rs, which resolves every gdb
    // slot of do_sys_openat2 on 6.12.)
    assert!(r.watch.function_offset > 8, "{}", r.key_value);
    let canary = resolve(
        &[&vmlinux],
        &ResolveRequest {
            function: "__do_sys_newuname".into(),
            canary: true,
            ..ResolveRequest::default()
        },
    )
    .expect("6.12 canary");
    assert!(canary.cfa_offset < 0);
}

/// A module built by Kbuild against the Debian 6.1 headers (ET_REL with
/// `.rela.debug_*`, the way every `.ko` is): the stack slots must match
/// gdb's (which applies the relocations itself), and resolve must work.
#[test]
fn kbuild_module_matches_gdb() {
    let Some(root) = common::kernel_root("6.1") else {
        common::missing("the Debian 6.1 kernel tree");
        return;
    };
    let Some(headers) = std::fs::read_dir(root.join("usr/src")).ok().and_then(|d| {
        d.flatten()
            .map(|e| e.path())
            .find(|p| p.join("Module.symvers").is_file())
    }) else {
        common::missing("the 6.1 kernel headers (linux-headers-*-cloud-amd64)");
        return;
    };
    if !common::have("gdb") || !common::have("make") {
        common::missing("gdb and make");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kswfix.c");
    std::fs::copy(&source, dir.path().join("kswfix.c")).expect("copy module source");
    std::fs::write(dir.path().join("Kbuild"), "obj-m := kswfix.o\n").expect("Kbuild");
    common::build_kbuild_module(&headers, dir.path());
    let path = dir.path().join("kswfix.ko");
    let file = locate::open(&path).expect("open module");
    let image = ElfImage::parse(&file).expect("parse module");
    assert_eq!(image.kind(), ksw_analyze::ImageKind::Relocatable);
    let release = common::release_of(&common::vmlinux("6.1").expect("vmlinux"));
    locate::check_module(&image, &release).expect("vermagic matches the headers' release");
    assert!(locate::check_module(&image, "6.12.0-bogus").is_err());

    let answers = common::oracle::parse_scopes(&common::oracle::gdb(
        &path,
        &["info scope kswfix_victim".to_string()],
    ));
    let mut checked = 0;
    for (function, slots) in &answers {
        let layout = frame_layout(&[&file], function).expect("layout");
        for (name, offset, length) in slots {
            let v = layout
                .variables
                .iter()
                .find(|v| &v.name == name)
                .expect("variable listed");
            assert_eq!(
                (v.cfa_offset, v.size),
                (Some(*offset), Some(*length)),
                "{function}.{name}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "gdb gave {checked} slots");
    let r = resolve(&[&file], &request("kswfix_victim", "req.len")).expect("resolve in module");
    assert_eq!(r.watch.watch_len, 2);
    assert!(
        r.probe_source
            .as_deref()
            .is_some_and(|s| s.contains("kswfix.c")),
        "{:?}",
        r.probe_source
    );
    // The canary of a module function (`mov %gs:0x28`).
    let canary = resolve(
        &[&file],
        &ResolveRequest {
            function: "kswfix_victim".into(),
            canary: true,
            ..ResolveRequest::default()
        },
    )
    .expect("module canary");
    assert_eq!(canary.watch.watch_len, 8);
}
