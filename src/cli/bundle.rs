//! `stylecam bundle install|rollback|list`: the bundle store
//! ([`stylecam::bundle::store`]) from the command line, and the reload of
//! the running daemon. The reload is the daemon's own SIGHUP path: by
//! `systemctl reload UNIT` (the unit's ExecReload) where systemd runs it,
//! or `kill(PID, SIGHUP)` with `--pid`.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::Command;
use stylecam::bundle::store::{Store, Switch, CURRENT, DEFAULT_ROOT};
use stylecam::bundle::Bundle;
use stylecam::config::{self, BackendKind};

#[derive(Subcommand)]
pub enum BundleCommand {
    /// Verify a bundle (a folder or a .tar/.tar.gz of one), copy it into the
    /// store, make it `current` and reload the daemon.
    ///
    /// Before anything changes, the bundle is loaded as the daemon would
    /// load it: every ONNX file against the sha256 its bundle.toml records,
    /// shapes against the classes. It is copied to a hidden folder, synced,
    /// checked again and renamed to <store>/<name>-<version>-<hash>/; then
    /// the `current` link is replaced in one rename and `previous` names the
    /// bundle it replaced. Any failure leaves the running bundle as it was.
    ///
    /// The daemon serves the store only where the config's model.bundle is
    /// the `current` link:
    ///
    ///   [model]
    ///   bundle = "/var/lib/stylecam/bundles/current"
    ///
    /// The first install into an empty store keeps the bundle the config
    /// named until then as `previous`, so `rollback` can return to it.
    ///
    /// Examples:
    ///
    ///   sudo stylecam bundle install shop-styles-2.tar --sha256 3f5c…
    ///   sudo stylecam bundle install runs/first/bundle
    #[command(verbatim_doc_comment)]
    Install(InstallArgs),
    /// Make the `previous` bundle `current` again (the one it replaces
    /// becomes `previous`: a second rollback undoes the first), then reload.
    Rollback(SwitchArgs),
    /// The installed bundles, which one is current and which previous, and
    /// whether each still loads.
    List(StoreArgs),
}

#[derive(Args)]
pub struct StoreArgs {
    /// The daemon's config file; its model.bundle should be the store's
    /// `current` link.
    #[arg(long, short, default_value = "/etc/stylecam/stylecam.toml")]
    pub config: PathBuf,
    /// The bundle store. Default: the folder holding model.bundle when that
    /// is a link named `current`, else /var/lib/stylecam/bundles.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
}

#[derive(Args)]
pub struct ReloadArgs {
    /// Send SIGHUP to this process instead of `systemctl reload UNIT`
    /// (a daemon not run by systemd).
    #[arg(long, conflicts_with = "no_reload")]
    pub pid: Option<i32>,
    /// The systemd unit to reload.
    #[arg(long, default_value = "stylecam")]
    pub unit: String,
    /// Switch the link only: the daemon serves the new bundle at its next
    /// reload or start (e.g. to run `stylecam build-engine` first).
    #[arg(long)]
    pub no_reload: bool,
}

#[derive(Args)]
pub struct InstallArgs {
    /// A bundle folder (bundle.toml + ONNX files) or a .tar/.tar.gz holding
    /// one, at its top or in one folder.
    pub src: PathBuf,
    /// The tar's expected sha256 (hex), from whoever made it; refused
    /// before unpacking when it differs.
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub reload: ReloadArgs,
}

#[derive(Args)]
pub struct SwitchArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub reload: ReloadArgs,
}

pub fn run(cmd: &BundleCommand) -> Result<()> {
    match cmd {
        BundleCommand::Install(a) => install(a),
        BundleCommand::Rollback(a) => rollback(a),
        BundleCommand::List(a) => list(a),
    }
}

/// The daemon's config as the store sees it.
struct Target {
    store: Store,
    config: PathBuf,
    /// model.bundle, made absolute.
    bundle: PathBuf,
    backend: BackendKind,
}

impl Target {
    fn open(args: &StoreArgs) -> Result<Self> {
        let cfg = config::load(Some(&args.config)).with_context(|| {
            format!(
                "reading the daemon's config {} (pass the right one with --config)",
                args.config.display()
            )
        })?;
        let bundle = std::path::absolute(&cfg.model.bundle).unwrap_or(cfg.model.bundle.clone());
        let root = match &args.store {
            Some(s) => std::path::absolute(s).unwrap_or(s.clone()),
            None if bundle.file_name().is_some_and(|n| n == CURRENT) => {
                bundle.parent().map(Path::to_path_buf).unwrap_or_default()
            }
            None => DEFAULT_ROOT.into(),
        };
        Ok(Self {
            store: Store::new(root),
            config: args.config.clone(),
            bundle,
            backend: cfg.model.backend,
        })
    }

    /// Whether the daemon reads the store (model.bundle is `current`).
    fn managed(&self) -> bool {
        self.bundle == self.store.current_link()
    }

    /// Why the daemon will not serve the switch, and the edit that fixes it.
    fn unmanaged(&self, switch: &Switch) -> anyhow::Error {
        anyhow::anyhow!(
            "the store's `current` now names {} ({}), but the daemon does not read the store: {} sets model.bundle = \"{}\". Fix: under [model] in {}, set bundle = \"{}\", then `systemctl reload stylecam`",
            switch.current,
            switch.model,
            self.config.display(),
            self.bundle.display(),
            self.config.display(),
            self.store.current_link().display()
        )
    }
}

fn install(args: &InstallArgs) -> Result<()> {
    let target = Target::open(&args.store)?;
    let store = &target.store;
    if !target.managed() && store.target(CURRENT).is_none() && Bundle::load(&target.bundle).is_ok()
    {
        // An empty store: keep the bundle served until now as `previous`.
        let kept = store
            .install(&target.bundle, None)
            .with_context(|| format!("keeping {} in the store", target.bundle.display()))?;
        println!(
            "kept the bundle model.bundle names ({}) as {}",
            kept.model, kept.current
        );
    }
    let switch = store.install(&args.src, args.sha256.as_deref())?;
    if let Some(sha) = &switch.tar_sha256 {
        println!("{}: sha256 {sha}", args.src.display());
    }
    println!(
        "verified {} (every file against bundle.toml's sha256); installed as {}",
        switch.model,
        store.root().join(&switch.current).display()
    );
    report(&target, &switch)?;
    reload(&target, &args.reload, &switch)
}

fn rollback(args: &SwitchArgs) -> Result<()> {
    let target = Target::open(&args.store)?;
    let switch = target.store.rollback().context("rolling back")?;
    report(&target, &switch)?;
    reload(&target, &args.reload, &switch)
}

fn report(target: &Target, switch: &Switch) -> Result<()> {
    let link = target.store.current_link();
    if switch.unchanged {
        println!(
            "{} already names {}: nothing switched",
            link.display(),
            switch.current
        );
    } else {
        println!("{} → {} ({})", link.display(), switch.current, switch.model);
    }
    if let Some(prev) = &switch.previous {
        println!("previous → {prev} (`stylecam bundle rollback` returns to it)");
    }
    if !target.managed() {
        return Err(target.unmanaged(switch));
    }
    Ok(())
}

/// Asks the running daemon to re-read its config and bundle (SIGHUP).
fn reload(target: &Target, args: &ReloadArgs, switch: &Switch) -> Result<()> {
    let model = &switch.model;
    if target.backend == BackendKind::Tensorrt {
        println!(
            "model.backend = \"tensorrt\": the new bundle needs its engine (`stylecam build-engine --config {}`); without one the reload fails and the old model keeps serving",
            target.config.display()
        );
    }
    let after = "the daemon logs `reloaded: serving ".to_string()
        + model
        + "`, or `reload failed` with the reason while the old model keeps serving";
    if args.no_reload {
        println!(
            "not reloaded (--no-reload): the daemon serves {model} after its next reload or start"
        );
        return Ok(());
    }
    if let Some(pid) = args.pid {
        // SAFETY: kill(2) with a pid and a signal number has no memory effects.
        if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
            let e = std::io::Error::last_os_error();
            bail!("sending SIGHUP to pid {pid}: {e}. Fix: pass the daemon's pid (`pidof stylecam`), run as its user or root, or reload it later; the link already names {model}");
        }
        println!("sent SIGHUP to pid {pid}: {after}");
        return Ok(());
    }
    let unit = &args.unit;
    if !Path::new("/run/systemd/system").exists() {
        println!("not reloaded: systemd does not run here. Send SIGHUP to the daemon (`kill -HUP PID`, or rerun with --pid PID) to serve {model}");
        return Ok(());
    }
    let active = Command::new("systemctl")
        .args(["is-active", "--quiet", unit])
        .status()
        .context("running systemctl (pass --pid PID or --no-reload where the daemon is not a systemd unit)")?;
    if !active.success() {
        println!("not reloaded: {unit} is not running; it serves {model} when it starts");
        return Ok(());
    }
    let out = Command::new("systemctl")
        .args(["reload", unit])
        .output()
        .context("running systemctl reload")?;
    if !out.status.success() {
        bail!(
            "systemctl reload {unit} failed: {}. Fix: run it as root (`sudo systemctl reload {unit}`); the link already names {model}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    println!("reloaded {unit}: {after} (`journalctl -u {unit} -n 20`)");
    Ok(())
}

fn list(args: &StoreArgs) -> Result<()> {
    let target = Target::open(args)?;
    let store = &target.store;
    let entries = store.list().context("listing the bundle store")?;
    println!("bundle store {}", store.root().display());
    if entries.is_empty() {
        println!("  (empty: `stylecam bundle install DIR|TAR` adds one)");
    }
    for e in &entries {
        let mark = match (e.current, e.previous) {
            (true, _) => "current ",
            (_, true) => "previous",
            _ => "        ",
        };
        match &e.model {
            Ok(model) => println!("  {mark}  {}  {model}", e.id),
            Err(why) => println!("  {mark}  {}  DOES NOT LOAD: {why}", e.id),
        }
    }
    if target.managed() {
        println!(
            "{} reads {}",
            target.config.display(),
            store.current_link().display()
        );
    } else {
        println!(
            "{} sets model.bundle = \"{}\", not this store. Fix: under [model], set bundle = \"{}\"",
            target.config.display(),
            target.bundle.display(),
            store.current_link().display()
        );
    }
    Ok(())
}
