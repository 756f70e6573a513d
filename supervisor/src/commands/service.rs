//! `fazt service install`: the systemd unit for this executable and data
//! dir (SPEC §10), written where systemd looks for it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use fazt_shared::DataDir;

use crate::cli::ServiceCommand;
use crate::supervise::systemd;
use crate::usage::UsageError;

/// Runs one `fazt service` subcommand.
pub fn run(data: &DataDir, cmd: ServiceCommand) -> Result<()> {
    let ServiceCommand::Install { user, print, force } = cmd;
    let exe = std::env::current_exe().context("locating the fazt executable")?;
    // The unit must name the data dir the way systemd will see it: absolute.
    let data_path = std::path::absolute(data.path()).context("resolving the data dir")?;
    let unit = systemd::unit(
        &exe.display().to_string(),
        &data_path.display().to_string(),
        user,
    );
    if print {
        print!("{unit}");
        return Ok(());
    }
    let path = unit_path(user)?;
    if path.exists() && !force {
        return Err(UsageError(format!(
            "{} exists; pass --force to replace it, or --print to see the new one",
            path.display()
        ))
        .into());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, unit).with_context(|| format!("writing {}", path.display()))?;
    let ctl = if user {
        "systemctl --user"
    } else {
        "systemctl"
    };
    println!("wrote {}", path.display());
    println!("start it now and at every boot with:");
    println!("  {ctl} daemon-reload");
    println!("  {ctl} enable --now fazt");
    println!("then: {ctl} status fazt   (and `fazt workers status`)");
    Ok(())
}

fn unit_path(user: bool) -> Result<PathBuf> {
    if !user {
        return Ok(PathBuf::from("/etc/systemd/system/fazt.service"));
    }
    let config = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    };
    Ok(config.join("systemd/user/fazt.service"))
}
