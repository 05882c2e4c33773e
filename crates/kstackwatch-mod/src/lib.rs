//! The contract between the kernel module `kstackwatch.ko` and the `ksw`
//! toolkit.
//!
//! This crate owns what both sides must agree on: the grammar of the
//! watch string written to `/proc/kstackwatch` ([`config`]), the binary
//! layout of the catch record the module keeps in memory for post-mortem
//! analysis ([`record`]), and the map by which the module tells a reader
//! of its memory where its live state lies ([`state_map`]). It depends on nothing, so the
//! module's C header and the analyzer can both follow it.
//!
//! The C side lives in `crates/kstackwatch-mod/module/`; its
//! `ksw_record.h` and `ksw_state_map.h` are checked against [`record`] and
//! [`state_map`] by `tests/layout.rs`, and
//! its parser (`ksw_config.c`) follows the same rules and error numbers as
//! [`config::parse`].
#![deny(missing_docs)]

pub mod config;
pub mod record;
pub mod state_map;

pub use config::{ConfigError, Grammar, WatchConfig, parse};
pub use record::{Catch, CatchLog, Regs};
