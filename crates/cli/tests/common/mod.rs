//! What the CLI's integration tests share: where the pipeline's fixtures
//! are (`KSW_FIXTURES`, default `~/.cache/ksw/fixtures`). Missing fixtures
//! fail a test unless `KSW_ALLOW_MISSING_FIXTURES=1`.

use std::path::PathBuf;

/// The fixture root, or `None` when fixtures are missing and that is
/// allowed.
pub fn fixtures() -> Option<PathBuf> {
    let root = std::env::var_os("KSW_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/ksw/fixtures")
        });
    if root.join("6.1/sysrq/manifest.json").exists() {
        return Some(root);
    }
    if std::env::var("KSW_ALLOW_MISSING_FIXTURES").as_deref() == Ok("1") {
        return None;
    }
    panic!(
        "fixtures missing under {} (run `python3 testdata/pipeline all`)",
        root.display()
    );
}
