//! `cargo xtask schema [--check]`: regenerates the committed
//! `aphex-config.schema.json` from the Rust model (or, with `--check`, fails
//! when it is stale).

use anyhow::{Context, Result, bail};

/// Writes the schema, or checks that the committed file is current.
pub fn run(check: bool) -> Result<()> {
    let path = crate::root().join("aphex-config.schema.json");
    let want = aphex_config::schema_text();
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have == want {
        eprintln!("xtask: {} is up to date", path.display());
        return Ok(());
    }
    if check {
        bail!(
            "{} is stale; run `cargo xtask schema` and commit the result",
            path.display()
        );
    }
    std::fs::write(&path, want).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}
