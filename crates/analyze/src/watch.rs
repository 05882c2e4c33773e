//! Rendering a watch as the strings kstackwatch.ko accepts.
//!
//! The grammar is owned by the contract crate (`kstackwatch-contract`):
//! a [`Watch`] becomes its `WatchConfig`, which renders the key=value form
//! (`fn= fo= so= wl= [dp=] [ph=1]`) and the positional form
//! (`func+off[+depth] so:len`), and every rendered string is parsed back
//! with the module's own rules, so ksw never prints a string the module
//! would refuse or read differently.

use kstackwatch_contract::{Grammar, WatchConfig};
use serde::Serialize;

/// A watch request: what kstackwatch.ko needs to arm one breakpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Watch {
    /// The kprobe symbol (`fn=`).
    pub function: String,
    /// Offset of the probed instruction in the function (`fo=`).
    pub function_offset: u64,
    /// Offset added to SP after the probed instruction ran (`so=`).
    pub sp_offset: u64,
    /// Bytes watched: 1, 2, 4 or 8 (`wl=`).
    pub watch_len: u8,
    /// Recursion depth filter (`dp=`), when not the outermost call.
    pub depth: Option<u16>,
    /// Panic on a hit (`ph=1`).
    pub panic: bool,
}

impl Watch {
    /// The contract's view of this watch; `Err` with the reason when a
    /// field does not fit the grammar (offsets are 16-bit there).
    pub fn to_config(&self) -> Result<WatchConfig, String> {
        let narrow = |what: &str, v: u64| {
            u16::try_from(v).map_err(|_| format!("{what} {v} does not fit in 16 bits"))
        };
        Ok(WatchConfig {
            func_name: self.function.clone(),
            func_offset: narrow("function offset", self.function_offset)?,
            depth: self.depth.unwrap_or(0),
            max_watch: 0,
            sp_offset: narrow("SP offset", self.sp_offset)?,
            watch_len: u16::from(self.watch_len),
            canary: false,
            panic_hit: self.panic,
            grammar: Grammar::KeyValue,
        })
    }

    /// Both strings, each checked by parsing it back as the module would:
    /// (key=value, positional when that grammar can say it).
    pub fn render(&self) -> Result<(String, Option<String>), String> {
        let config = self.to_config()?;
        let key_value = config.to_key_value();
        let positional = config.to_positional();
        for text in std::iter::once(&key_value).chain(positional.as_ref()) {
            match kstackwatch_contract::parse(text) {
                Ok(Some(back)) if same(&back, &config) => {}
                Ok(Some(back)) => return Err(format!("`{text}` would be read back as `{back}`")),
                Ok(None) => return Err(format!("`{text}` would be read as an empty config")),
                Err(e) => return Err(format!("the module would refuse `{text}`: {e}")),
            }
        }
        Ok((key_value, positional))
    }
}

/// Equal but for the grammar the string used.
fn same(a: &WatchConfig, b: &WatchConfig) -> bool {
    WatchConfig {
        grammar: b.grammar,
        ..a.clone()
    } == *b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_both_grammars_through_the_contract() {
        let mut watch = Watch {
            function: "victim".into(),
            function_offset: 0x2b,
            sp_offset: 64,
            watch_len: 8,
            depth: None,
            panic: false,
        };
        let (kv, pos) = watch.render().expect("valid watch");
        assert_eq!(kv, "fn=victim fo=0x2b so=64 wl=8");
        assert_eq!(pos.as_deref(), Some("victim+0x2b 64:8"));
        watch.depth = Some(3);
        let (kv, pos) = watch.render().expect("valid watch");
        assert_eq!(kv, "fn=victim fo=0x2b dp=3 so=64 wl=8");
        assert_eq!(pos.as_deref(), Some("victim+0x2b+3 64:8"));
        // The positional grammar has no panic flag.
        watch.panic = true;
        let (kv, pos) = watch.render().expect("valid watch");
        assert_eq!(kv, "fn=victim fo=0x2b dp=3 so=64 wl=8 ph=1");
        assert_eq!(pos, None);
        // A 2-byte watch at an odd-looking but aligned offset, depth 0 left out.
        let short = Watch {
            function: "do_sys_openat2".into(),
            function_offset: 0x4c,
            sp_offset: 6,
            watch_len: 2,
            depth: Some(0),
            panic: false,
        };
        assert_eq!(
            short.render(),
            Ok((
                "fn=do_sys_openat2 fo=0x4c so=6 wl=2".to_string(),
                Some("do_sys_openat2+0x4c 6:2".to_string())
            ))
        );
    }

    #[test]
    fn refuses_what_the_module_would_refuse() {
        let watch = Watch {
            function: "victim".into(),
            function_offset: 0x2b,
            sp_offset: 70000,
            watch_len: 8,
            depth: None,
            panic: false,
        };
        // so= is a u16 in the grammar.
        assert_eq!(
            watch.render(),
            Err("SP offset 70000 does not fit in 16 bits".to_string())
        );
        // The module refuses an `so` that is not a multiple of `wl`
        // (EINVAL, crates/kstackwatch-mod/README.md), so ksw never prints one.
        let misaligned = Watch {
            sp_offset: 4,
            ..watch.clone()
        };
        let err = misaligned
            .render()
            .expect_err("so=4 with wl=8 is misaligned");
        assert!(
            err.starts_with("the module would refuse `fn=victim fo=0x2b so=4 wl=8`")
                && err.contains("not aligned"),
            "{err}"
        );
        // The same offset with a 4-byte watch is aligned.
        let four = Watch {
            sp_offset: 4,
            watch_len: 4,
            ..watch.clone()
        };
        assert_eq!(
            four.render(),
            Ok((
                "fn=victim fo=0x2b so=4 wl=4".to_string(),
                Some("victim+0x2b 4:4".to_string())
            ))
        );
        // Beyond the 16 KiB stack (THREAD_SIZE): ERANGE in the module.
        let beyond = Watch {
            sp_offset: 16384,
            ..watch.clone()
        };
        let err = beyond.render().expect_err("beyond the stack");
        assert!(
            err.starts_with("the module would refuse `fn=victim fo=0x2b so=16384 wl=8`"),
            "{err}"
        );
        let long_name = Watch {
            function: "f".repeat(80),
            sp_offset: 8,
            ..watch
        };
        let err = long_name.render().expect_err("name too long");
        assert!(
            err.starts_with(&format!("the module would refuse `fn={} ", "f".repeat(80))),
            "{err}"
        );
    }
}
