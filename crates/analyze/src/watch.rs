//! Rendering a watch as the strings kstackwatch.ko accepts.
//!
//! The grammar is owned by the contract crate (`kstackwatch-contract`);
//! until it exports a formatter this small one renders the two forms
//! documented upstream: key=value (`fn= fo= so= wl= [dp=] [ph=1]`, v5–v8)
//! and positional (`func+off[+depth] so:len`, RFC–v4).

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
    /// The key=value form.
    pub fn key_value(&self) -> String {
        let mut out = format!(
            "fn={} fo={:#x} so={} wl={}",
            self.function, self.function_offset, self.sp_offset, self.watch_len
        );
        if let Some(depth) = self.depth {
            out.push_str(&format!(" dp={depth}"));
        }
        if self.panic {
            out.push_str(" ph=1");
        }
        out
    }

    /// The positional form. It has no panic flag; that is a module
    /// parameter in the versions that used it.
    pub fn positional(&self) -> String {
        let mut out = format!("{}+{:#x}", self.function, self.function_offset);
        if let Some(depth) = self.depth {
            out.push_str(&format!("+{depth}"));
        }
        out.push_str(&format!(" {}:{}", self.sp_offset, self.watch_len));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_both_grammars() {
        let mut watch = Watch {
            function: "victim".into(),
            function_offset: 0x2b,
            sp_offset: 64,
            watch_len: 8,
            depth: None,
            panic: false,
        };
        assert_eq!(watch.key_value(), "fn=victim fo=0x2b so=64 wl=8");
        assert_eq!(watch.positional(), "victim+0x2b 64:8");
        watch.depth = Some(3);
        watch.panic = true;
        assert_eq!(watch.key_value(), "fn=victim fo=0x2b so=64 wl=8 dp=3 ph=1");
        assert_eq!(watch.positional(), "victim+0x2b+3 64:8");
    }
}
