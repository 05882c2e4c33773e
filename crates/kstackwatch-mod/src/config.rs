//! The watch-string grammar of `/proc/kstackwatch`.
//!
//! Two forms are accepted, exactly as the module accepts them:
//!
//! * key=value (upstream v5+), chosen whenever the string contains `=`:
//!   `fn=NAME fo=OFF [dp=N] [mw=N] [so=OFF] [wl=LEN] [ac=0|1] [ph=0|1]`,
//!   with long aliases `func_name`, `func_offset`, `depth`, `max_watch`,
//!   `sp_offset`, `watch_len`, `auto_canary`, `panic_hit`;
//! * positional (upstream RFC–v4): `NAME+OFF[+DEPTH] [SP_OFFSET:LEN]`,
//!   where a missing `SP_OFFSET:LEN` means "watch the canary".
//!
//! Numbers follow the kernel's `kstrtou16(s, 0)`: decimal, `0x` hex or
//! leading-`0` octal, no sign. Every problem is an error with the errno
//! the module's `write()` returns ([`ConfigError::errno`]).

use std::fmt;

/// Longest accepted config, in bytes, after trimming whitespace.
pub const MAX_CONFIG_LEN: usize = 127;
/// Longest function name, in bytes.
pub const MAX_FUNC_NAME_LEN: usize = 63;
/// x86_64 kernel stack size; `sp_offset` must stay below it.
pub const THREAD_SIZE: u32 = 16384;
/// Hardware breakpoints per CPU on x86; the ceiling of `max_watch`.
pub const MAX_WATCH: u16 = 4;

/// Which grammar a config string used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grammar {
    /// `fn=... fo=...`
    KeyValue,
    /// `func+off[+depth] [so:len]`
    Positional,
}

/// A parsed watch configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchConfig {
    /// The function whose frame is watched.
    pub func_name: String,
    /// Byte offset of the arming probe inside the function.
    pub func_offset: u16,
    /// Which activation is watched (0 = outermost).
    pub depth: u16,
    /// Watchpoints to preallocate; 0 = as many as are free.
    pub max_watch: u16,
    /// Watched address = SP at the probe + `sp_offset`.
    pub sp_offset: u16,
    /// Watch length: 1, 2, 4 or 8.
    pub watch_len: u16,
    /// Watch the stack canary instead of `sp_offset`.
    pub canary: bool,
    /// Panic after reporting a catch.
    pub panic_hit: bool,
    /// The grammar the string used.
    pub grammar: Grammar,
}

/// Why a config string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Longer than [`MAX_CONFIG_LEN`] bytes.
    TooLong(usize),
    /// A key=value token without `=`.
    NotKeyValue(String),
    /// A key the grammar does not have.
    UnknownKey(String),
    /// A key given twice (long and short names count as the same key).
    DuplicateKey(&'static str),
    /// `key=` with nothing after it.
    EmptyValue(&'static str),
    /// Not a number.
    BadNumber(&'static str, String),
    /// A number too large for its field.
    OutOfRange(&'static str, String),
    /// `ac`/`ph` other than 0 or 1.
    NotBool(&'static str, u16),
    /// The function name is empty.
    EmptyName,
    /// The function name is longer than [`MAX_FUNC_NAME_LEN`].
    NameTooLong(usize),
    /// The function name has a character outside `[A-Za-z0-9_.]`.
    BadName(String),
    /// key=value form without `func_name`.
    MissingName,
    /// Positional form without `+offset`.
    MissingOffset,
    /// Positional form with more than two `+`.
    TooManyPlus,
    /// Positional form with more than two fields.
    TooManyFields(String),
    /// Positional local part that is not `sp_offset:len`.
    NotPair(String),
    /// `auto_canary` together with `sp_offset` or `watch_len`.
    CanaryConflict,
    /// A watch length other than 1, 2, 4, 8.
    BadLength(u16),
    /// `sp_offset` not a multiple of the watch length.
    Misaligned {
        /// the offset
        sp_offset: u16,
        /// the length
        watch_len: u16,
    },
    /// `sp_offset` at or beyond [`THREAD_SIZE`].
    BeyondStack(u16),
    /// `max_watch` above [`MAX_WATCH`].
    TooManyWatch(u16),
}

/// `EINVAL`
pub const EINVAL: i32 = 22;
/// `ERANGE`
pub const ERANGE: i32 = 34;
/// `E2BIG`
pub const E2BIG: i32 = 7;
/// `ENAMETOOLONG`
pub const ENAMETOOLONG: i32 = 36;

impl ConfigError {
    /// The errno the module's `write()` fails with for this error.
    pub fn errno(&self) -> i32 {
        match self {
            ConfigError::TooLong(_) => E2BIG,
            ConfigError::NameTooLong(_) => ENAMETOOLONG,
            ConfigError::OutOfRange(..)
            | ConfigError::BeyondStack(_)
            | ConfigError::TooManyWatch(_) => ERANGE,
            _ => EINVAL,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConfigError::*;
        match self {
            TooLong(n) => write!(f, "config is {n} bytes, longer than {MAX_CONFIG_LEN}"),
            NotKeyValue(t) => write!(f, "'{t}' is not key=value"),
            UnknownKey(k) => write!(f, "unknown key '{k}'"),
            DuplicateKey(k) => write!(f, "key {k} given twice"),
            EmptyValue(k) => write!(f, "empty value for {k}"),
            BadNumber(k, v) => write!(f, "bad number for {k}: '{v}'"),
            OutOfRange(k, v) => write!(f, "{k} out of range: '{v}'"),
            NotBool(k, v) => write!(f, "{k} must be 0 or 1, not {v}"),
            EmptyName => write!(f, "empty function name"),
            NameTooLong(n) => {
                write!(
                    f,
                    "function name is {n} bytes, longer than {MAX_FUNC_NAME_LEN}"
                )
            }
            BadName(n) => write!(f, "bad character in function name '{n}'"),
            MissingName => write!(f, "missing func_name"),
            MissingOffset => write!(f, "missing +offset after function name"),
            TooManyPlus => write!(f, "too many '+' fields"),
            TooManyFields(t) => write!(f, "too many fields: '{t}'"),
            NotPair(t) => write!(f, "local part '{t}' is not sp_offset:len"),
            CanaryConflict => write!(f, "auto_canary excludes sp_offset and watch_len"),
            BadLength(l) => write!(f, "watch_len {l} is not 1, 2, 4 or 8"),
            Misaligned {
                sp_offset,
                watch_len,
            } => {
                write!(
                    f,
                    "sp_offset {sp_offset} is not aligned to watch_len {watch_len}"
                )
            }
            BeyondStack(o) => {
                write!(f, "sp_offset {o} is beyond the stack ({THREAD_SIZE} bytes)")
            }
            TooManyWatch(n) => {
                write!(
                    f,
                    "max_watch {n} exceeds the {MAX_WATCH} hardware breakpoints"
                )
            }
        }
    }
}

impl std::error::Error for ConfigError {}

const KEYS: [(&str, &str); 8] = [
    ("func_name", "fn"),
    ("func_offset", "fo"),
    ("depth", "dp"),
    ("max_watch", "mw"),
    ("sp_offset", "so"),
    ("watch_len", "wl"),
    ("auto_canary", "ac"),
    ("panic_hit", "ph"),
];
const FN: usize = 0;
const SO: usize = 4;
const WL: usize = 5;

const SEPARATORS: [char; 3] = [' ', '\t', '\n'];

/// The kernel's `kstrtou16(s, 0, ...)` after the module's "starts with a
/// digit" check.
fn parse_u16(key: &'static str, val: &str) -> Result<u16, ConfigError> {
    if val.is_empty() {
        return Err(ConfigError::EmptyValue(key));
    }
    let bad = || ConfigError::BadNumber(key, val.to_string());
    if !val.as_bytes()[0].is_ascii_digit() {
        return Err(bad());
    }
    let b = val.as_bytes();
    let (digits, radix) =
        if b.len() > 2 && b[0] == b'0' && (b[1] | 0x20) == b'x' && b[2].is_ascii_hexdigit() {
            (&val[2..], 16)
        } else if b[0] == b'0' && b.len() > 1 {
            (&val[1..], 8)
        } else {
            (val, 10)
        };
    let mut v: u64 = 0;
    let mut overflow = false;
    for c in digits.chars() {
        let d = c.to_digit(radix).ok_or_else(bad)? as u64;
        match v.checked_mul(radix as u64).and_then(|x| x.checked_add(d)) {
            Some(x) => v = x,
            None => overflow = true,
        }
    }
    if overflow || v > u16::MAX as u64 {
        return Err(ConfigError::OutOfRange(key, val.to_string()));
    }
    Ok(v as u16)
}

fn parse_bool(key: &'static str, val: &str) -> Result<bool, ConfigError> {
    match parse_u16(key, val)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(ConfigError::NotBool(key, v)),
    }
}

fn check_name(name: &str) -> Result<String, ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::EmptyName);
    }
    if name.len() > MAX_FUNC_NAME_LEN {
        return Err(ConfigError::NameTooLong(name.len()));
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
    {
        return Err(ConfigError::BadName(name.to_string()));
    }
    Ok(name.to_string())
}

fn empty(grammar: Grammar) -> WatchConfig {
    WatchConfig {
        func_name: String::new(),
        func_offset: 0,
        depth: 0,
        max_watch: 0,
        sp_offset: 0,
        watch_len: 0,
        canary: false,
        panic_hit: false,
        grammar,
    }
}

fn tokens(s: &str) -> impl Iterator<Item = &str> {
    s.split(SEPARATORS).filter(|t| !t.is_empty())
}

fn parse_key_value(s: &str, seen: &mut [bool; 8]) -> Result<WatchConfig, ConfigError> {
    let mut cfg = empty(Grammar::KeyValue);
    for tok in tokens(s) {
        let (key, val) = tok
            .split_once('=')
            .ok_or_else(|| ConfigError::NotKeyValue(tok.to_string()))?;
        let idx = KEYS
            .iter()
            .position(|(l, sh)| *l == key || *sh == key)
            .ok_or_else(|| ConfigError::UnknownKey(key.to_string()))?;
        let name = KEYS[idx].0;
        if seen[idx] {
            return Err(ConfigError::DuplicateKey(name));
        }
        seen[idx] = true;
        match idx {
            0 => cfg.func_name = check_name(val)?,
            1 => cfg.func_offset = parse_u16(name, val)?,
            2 => cfg.depth = parse_u16(name, val)?,
            3 => cfg.max_watch = parse_u16(name, val)?,
            4 => cfg.sp_offset = parse_u16(name, val)?,
            5 => cfg.watch_len = parse_u16(name, val)?,
            6 => cfg.canary = parse_bool(name, val)?,
            _ => cfg.panic_hit = parse_bool(name, val)?,
        }
    }
    if !seen[FN] {
        return Err(ConfigError::MissingName);
    }
    Ok(cfg)
}

fn parse_positional(s: &str, seen: &mut [bool; 8]) -> Result<WatchConfig, ConfigError> {
    let mut cfg = empty(Grammar::Positional);
    let mut it = tokens(s);
    let func = it.next().ok_or(ConfigError::EmptyName)?;
    let local = it.next();
    if let Some(extra) = it.next() {
        return Err(ConfigError::TooManyFields(extra.to_string()));
    }
    let mut parts = func.split('+');
    cfg.func_name = check_name(parts.next().unwrap_or(""))?;
    let off = parts.next().ok_or(ConfigError::MissingOffset)?;
    let depth = parts.next();
    if parts.next().is_some() {
        return Err(ConfigError::TooManyPlus);
    }
    cfg.func_offset = parse_u16("func_offset", off)?;
    if let Some(d) = depth {
        cfg.depth = parse_u16("depth", d)?;
    }
    match local {
        None => cfg.canary = true,
        Some(l) => {
            let (so, len) = l
                .split_once(':')
                .ok_or_else(|| ConfigError::NotPair(l.to_string()))?;
            cfg.sp_offset = parse_u16("sp_offset", so)?;
            cfg.watch_len = parse_u16("watch_len", len)?;
            seen[SO] = true;
            seen[WL] = true;
        }
    }
    Ok(cfg)
}

fn check(mut cfg: WatchConfig, seen: &[bool; 8]) -> Result<WatchConfig, ConfigError> {
    if cfg.canary {
        if seen[SO] || seen[WL] {
            return Err(ConfigError::CanaryConflict);
        }
        cfg.watch_len = 8;
        cfg.sp_offset = 0;
    } else if !seen[WL] {
        cfg.watch_len = 8;
    }
    if ![1, 2, 4, 8].contains(&cfg.watch_len) {
        return Err(ConfigError::BadLength(cfg.watch_len));
    }
    if u32::from(cfg.sp_offset) >= THREAD_SIZE {
        return Err(ConfigError::BeyondStack(cfg.sp_offset));
    }
    if cfg.sp_offset % cfg.watch_len != 0 {
        return Err(ConfigError::Misaligned {
            sp_offset: cfg.sp_offset,
            watch_len: cfg.watch_len,
        });
    }
    if cfg.max_watch > MAX_WATCH {
        return Err(ConfigError::TooManyWatch(cfg.max_watch));
    }
    Ok(cfg)
}

/// Parse a config string as the module does.
///
/// Surrounding whitespace is ignored. `Ok(None)` is the empty string,
/// which stops watching.
pub fn parse(s: &str) -> Result<Option<WatchConfig>, ConfigError> {
    let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() > MAX_CONFIG_LEN {
        return Err(ConfigError::TooLong(s.len()));
    }
    let mut seen = [false; 8];
    let cfg = if s.contains('=') {
        parse_key_value(s, &mut seen)?
    } else {
        parse_positional(s, &mut seen)?
    };
    check(cfg, &seen).map(Some)
}

impl WatchConfig {
    /// The config in the key=value grammar, short keys, defaults left out.
    pub fn to_key_value(&self) -> String {
        let mut s = format!("fn={} fo={:#x}", self.func_name, self.func_offset);
        if self.depth != 0 {
            s += &format!(" dp={}", self.depth);
        }
        if self.max_watch != 0 {
            s += &format!(" mw={}", self.max_watch);
        }
        if self.canary {
            s += " ac=1";
        } else {
            s += &format!(" so={} wl={}", self.sp_offset, self.watch_len);
        }
        if self.panic_hit {
            s += " ph=1";
        }
        s
    }

    /// The config in the positional grammar, if it can say it (it has no
    /// `max_watch` and no `panic_hit`).
    pub fn to_positional(&self) -> Option<String> {
        if self.max_watch != 0 || self.panic_hit {
            return None;
        }
        let mut s = format!("{}+{:#x}", self.func_name, self.func_offset);
        if self.depth != 0 {
            s += &format!("+{}", self.depth);
        }
        if !self.canary {
            s += &format!(" {}:{}", self.sp_offset, self.watch_len);
        }
        Some(s)
    }
}

impl fmt::Display for WatchConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_key_value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> WatchConfig {
        parse(s)
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .expect("not empty")
    }

    fn err(s: &str) -> ConfigError {
        match parse(s) {
            Err(e) => e,
            Ok(c) => panic!("{s:?} was accepted as {c:?}"),
        }
    }

    #[test]
    fn key_value_long_and_short() {
        let a =
            ok("func_name=victim func_offset=0x2e depth=3 sp_offset=16 watch_len=4 max_watch=2");
        let b = ok("fn=victim fo=46 dp=3 so=0x10 wl=4 mw=2");
        assert_eq!(a.func_name, "victim");
        assert_eq!(
            (
                a.func_offset,
                a.depth,
                a.sp_offset,
                a.watch_len,
                a.max_watch
            ),
            (0x2e, 3, 16, 4, 2)
        );
        assert_eq!(a.grammar, Grammar::KeyValue);
        assert!(!a.canary);
        assert_eq!(a, b);
    }

    #[test]
    fn key_value_defaults_and_canary() {
        let c = ok("fn=f fo=1");
        assert_eq!(
            (c.watch_len, c.sp_offset, c.depth, c.canary, c.panic_hit),
            (8, 0, 0, false, false)
        );
        let c = ok("fn=f fo=1 ac=1 ph=1");
        assert!(c.canary && c.panic_hit);
        assert_eq!(c.watch_len, 8);
    }

    #[test]
    fn numbers_follow_kstrtou16_base0() {
        assert_eq!(ok("fn=f fo=010").func_offset, 8);
        assert_eq!(ok("fn=f fo=0X1f").func_offset, 0x1f);
        assert_eq!(ok("fn=f fo=0").func_offset, 0);
        assert_eq!(ok("fn=f fo=65535").func_offset, 65535);
        assert_eq!(err("fn=f fo=65536").errno(), ERANGE);
        assert_eq!(
            err("fn=f fo=08"),
            ConfigError::BadNumber("func_offset", "08".into())
        );
        assert_eq!(err("fn=f fo=0x").errno(), EINVAL);
        assert_eq!(err("fn=f fo=+1").errno(), EINVAL);
        assert_eq!(err("fn=f fo=99999999999999999999999").errno(), ERANGE);
    }

    #[test]
    fn positional_forms() {
        let c = ok("silent_corruption_victim+0x7f 0:8");
        assert_eq!(c.grammar, Grammar::Positional);
        assert_eq!(
            (c.func_offset, c.sp_offset, c.watch_len, c.canary),
            (0x7f, 0, 8, false)
        );
        let c = ok("recursive_func+0x20+3");
        assert_eq!(
            (c.func_offset, c.depth, c.canary, c.watch_len),
            (0x20, 3, true, 8)
        );
        let c = ok("  f+1+2\t16:4\n");
        assert_eq!((c.depth, c.sp_offset, c.watch_len), (2, 16, 4));
    }

    #[test]
    fn empty_stops() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse(" \n\t"), Ok(None));
    }

    #[test]
    fn bad_strings_and_their_errno() {
        let long_name = "a".repeat(70);
        let cases: Vec<(String, ConfigError, i32)> = vec![
            ("fn= fo=1".into(), ConfigError::EmptyName, EINVAL),
            (
                "fn=f fo=1 bogus=1".into(),
                ConfigError::UnknownKey("bogus".into()),
                EINVAL,
            ),
            (
                "fn=f fo".into(),
                ConfigError::NotKeyValue("fo".into()),
                EINVAL,
            ),
            (
                "fn=f fo=zz".into(),
                ConfigError::BadNumber("func_offset", "zz".into()),
                EINVAL,
            ),
            (
                "fn=f fo=-1".into(),
                ConfigError::BadNumber("func_offset", "-1".into()),
                EINVAL,
            ),
            (
                "fn=f fo=".into(),
                ConfigError::EmptyValue("func_offset"),
                EINVAL,
            ),
            (
                "fn=f fo=70000".into(),
                ConfigError::OutOfRange("func_offset", "70000".into()),
                ERANGE,
            ),
            (
                "fn=f dp=99999".into(),
                ConfigError::OutOfRange("depth", "99999".into()),
                ERANGE,
            ),
            ("fn=f wl=3".into(), ConfigError::BadLength(3), EINVAL),
            ("fn=f wl=0".into(), ConfigError::BadLength(0), EINVAL),
            (
                "fn=f so=4 wl=8".into(),
                ConfigError::Misaligned {
                    sp_offset: 4,
                    watch_len: 8,
                },
                EINVAL,
            ),
            (
                "fn=f so=16384".into(),
                ConfigError::BeyondStack(16384),
                ERANGE,
            ),
            (
                "fn=f fo=1 func_offset=1".into(),
                ConfigError::DuplicateKey("func_offset"),
                EINVAL,
            ),
            ("fn=f ac=1 so=8".into(), ConfigError::CanaryConflict, EINVAL),
            ("fn=f ac=1 wl=8".into(), ConfigError::CanaryConflict, EINVAL),
            ("fn=f mw=5".into(), ConfigError::TooManyWatch(5), ERANGE),
            (
                "fn=f ph=2".into(),
                ConfigError::NotBool("panic_hit", 2),
                EINVAL,
            ),
            (
                "fn=bad-name".into(),
                ConfigError::BadName("bad-name".into()),
                EINVAL,
            ),
            (
                format!("fn={long_name}"),
                ConfigError::NameTooLong(70),
                ENAMETOOLONG,
            ),
            ("fo=1 dp=2".into(), ConfigError::MissingName, EINVAL),
            (
                format!("fn=f {}", "dp=1 ".repeat(30)),
                ConfigError::TooLong(154),
                E2BIG,
            ),
            ("victim".into(), ConfigError::MissingOffset, EINVAL),
            ("+0x10".into(), ConfigError::EmptyName, EINVAL),
            ("v+1+2+3".into(), ConfigError::TooManyPlus, EINVAL),
            ("v+1 8".into(), ConfigError::NotPair("8".into()), EINVAL),
            ("v+1 8:3".into(), ConfigError::BadLength(3), EINVAL),
            (
                "v+1 0:8 extra".into(),
                ConfigError::TooManyFields("extra".into()),
                EINVAL,
            ),
            (
                "v+x".into(),
                ConfigError::BadNumber("func_offset", "x".into()),
                EINVAL,
            ),
            (
                "v++3".into(),
                ConfigError::EmptyValue("func_offset"),
                EINVAL,
            ),
        ];
        assert!(cases.len() >= 20);
        for (s, want, errno) in cases {
            let got = err(&s);
            assert_eq!(got, want, "{s:?}");
            assert_eq!(got.errno(), errno, "{s:?}");
            assert!(!got.to_string().is_empty());
        }
    }

    #[test]
    fn limits_are_inclusive() {
        // The longest name, the longest config and the largest max_watch
        // are accepted; one more is not.
        let name = "f".repeat(MAX_FUNC_NAME_LEN);
        assert_eq!(ok(&format!("fn={name} fo=1")).func_name, name);
        assert_eq!(
            err(&format!("fn={name}g fo=1")),
            ConfigError::NameTooLong(MAX_FUNC_NAME_LEN + 1)
        );
        let pad = " ".repeat(MAX_CONFIG_LEN - "fn=f fo=1".len() - "dp=1".len());
        let longest = format!("fn=f fo=1{pad}dp=1");
        assert_eq!(longest.len(), MAX_CONFIG_LEN);
        assert_eq!(ok(&longest).depth, 1);
        let too_long = format!("fn=f fo=1{pad} dp=1");
        assert_eq!(err(&too_long), ConfigError::TooLong(MAX_CONFIG_LEN + 1));
        assert_eq!(ok("fn=f fo=1 mw=4").max_watch, MAX_WATCH);
        assert_eq!(err("fn=f fo=1 mw=5"), ConfigError::TooManyWatch(5));
        // "0x" alone is not hex: its "x" is a bad octal digit.
        assert_eq!(
            err("fn=f fo=0x"),
            ConfigError::BadNumber("func_offset", "0x".into())
        );
        assert_eq!(ok("fn=f fo=0x1").func_offset, 1);
    }

    #[test]
    fn positional_form_has_no_max_watch_or_panic() {
        let only_panic = ok("fn=f fo=0x10 ph=1");
        assert_eq!(only_panic.to_positional(), None);
        let only_max = ok("fn=f fo=0x10 mw=2");
        assert_eq!(only_max.to_positional(), None);
        let neither = ok("fn=f fo=0x10 so=8 wl=8");
        assert_eq!(neither.to_positional().as_deref(), Some("f+0x10 8:8"));
        assert_eq!(format!("{only_panic}"), only_panic.to_key_value());
        assert_eq!(format!("{neither}"), "fn=f fo=0x10 so=8 wl=8");
    }

    #[test]
    fn printing_round_trips() {
        for s in [
            "fn=f fo=0x10 dp=2 so=24 wl=8",
            "fn=f fo=0x10 ac=1 ph=1 mw=2",
            "f+0x10+3 16:4",
            "f+0x10",
        ] {
            let c = ok(s);
            let kv = ok(&c.to_key_value());
            assert_eq!(
                WatchConfig {
                    grammar: c.grammar,
                    ..kv
                },
                c,
                "{s}"
            );
            if let Some(p) = c.to_positional() {
                let pc = ok(&p);
                assert_eq!(
                    WatchConfig {
                        grammar: c.grammar,
                        ..pc
                    },
                    c,
                    "{s}"
                );
            } else {
                assert!(c.max_watch != 0 || c.panic_hit);
            }
        }
    }
}
