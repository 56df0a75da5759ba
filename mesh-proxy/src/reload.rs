//! [`Reloader`]: the sidecar's `--config` files and directories, reloaded when they change or
//! on `SIGHUP` (feature `yaml`).
//!
//! The paths are checked every poll interval: a change in any file's contents (or a file
//! added or removed in a directory) reloads them all. A reload loads and
//! validates everything together, as at start, and only then swaps the result into the
//! [`LiveSidecar`]; when anything is wrong, every problem is logged, the rejection is counted
//! (`/stats` `config.update_rejected`, `/config_dump` `updates.last_error`), and the previous
//! configuration keeps serving. Warnings of a configuration that loads are logged too.

use crate::{LiveSidecar, StartError};
use mesh_core::fnv::FnvHasher;
use mesh_route::config::{Config, Diagnostic, Loaded, yaml_files};
use std::{hash::Hasher, path::PathBuf, time::Duration};
use tokio::sync::watch;

/// How often the sidecar looks at its configuration files.
///
/// ```
/// use mesh_proxy::reload::DEFAULT_POLL_INTERVAL;
/// assert_eq!(DEFAULT_POLL_INTERVAL, std::time::Duration::from_secs(1));
/// ```
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Configuration files and what they held when they were loaded.
///
/// ```
/// use mesh_proxy::reload::ConfigFiles;
/// let dir = std::env::temp_dir().join(format!("mesh-proxy-doc-config-files-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("mesh.yaml"), "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
///     spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n").unwrap();
/// std::fs::write(dir.join("notes.txt"), "not configuration").unwrap();
/// let (_files, loaded) = ConfigFiles::load(vec![dir.clone()]);
/// assert_eq!(loaded.unwrap().config.service_entries.len(), 1, "only *.yaml and *.yml");
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct ConfigFiles {
    paths: Vec<PathBuf>,
    loaded: Fingerprint,
}

impl ConfigFiles {
    /// Loads `paths` (files, or directories of `*.yaml`/`*.yml`), noting their contents first,
    /// so that a change made while they load is still seen as a change afterwards.
    ///
    /// ```
    /// use mesh_proxy::reload::ConfigFiles;
    /// # let dir = std::env::temp_dir().join(format!("mesh-proxy-doc-config-load-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// // `dir`: a new, empty directory.
    /// std::fs::write(dir.join("broken.yaml"), "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: 3}\n").unwrap();
    /// let (_files, loaded) = ConfigFiles::load(vec![dir.join("broken.yaml")]);
    /// let problems = loaded.unwrap_err();
    /// assert!(!problems.is_empty());
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn load(paths: Vec<PathBuf>) -> (Self, Result<Loaded, Vec<Diagnostic>>) {
        let loaded = fingerprint(&paths);
        let config = Config::load_paths(&paths);
        (ConfigFiles { paths, loaded }, config)
    }
}

/// Reloads a live sidecar's configuration from its files; see the [module docs](self).
///
/// ```
/// use mesh_proxy::{LiveSidecar, reload::{ConfigFiles, Reloader}};
/// # use mesh_proxy::sidecar::SidecarSettings;
/// # let dir = std::env::temp_dir().join(format!("mesh-proxy-doc-reloader-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// // `dir`: a new, empty directory.
/// std::fs::write(dir.join("mesh.yaml"), "").unwrap();
/// let (files, loaded) = ConfigFiles::load(vec![dir.clone()]);
/// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
/// let live = LiveSidecar::new(loaded.unwrap().config, settings).unwrap();
/// let reloader = Reloader::new(live.clone(), files);
/// assert_eq!(reloader.reload().unwrap(), 2);
/// assert_eq!(live.current().version(), 2);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct Reloader {
    live: LiveSidecar,
    paths: Vec<PathBuf>,
    loaded: Fingerprint,
}

/// What the files held: each one's path and a hash of its bytes (`None`: unreadable). File
/// times are too coarse to tell two quick writes of the same size apart.
type Fingerprint = Vec<(PathBuf, Option<u64>)>;

impl Reloader {
    /// A reloader of `files` into `live`, which runs the configuration they were loaded into.
    ///
    /// ```
    /// use mesh_proxy::{LiveSidecar, reload::{ConfigFiles, Reloader}};
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// # let dir = std::env::temp_dir().join(format!("mesh-proxy-doc-reloader-new-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// // `dir`: a new, empty directory.
    /// let (files, loaded) = ConfigFiles::load(vec![dir.clone()]);
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let live = LiveSidecar::new(loaded.unwrap().config, settings).unwrap();
    /// let reloader = Reloader::new(live.clone(), files);
    /// std::fs::write(dir.join("entry.yaml"), "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
    ///     spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n").unwrap();
    /// reloader.reload().unwrap();
    /// assert_eq!(live.current().config().service_entries.len(), 1);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn new(live: LiveSidecar, files: ConfigFiles) -> Self {
        Reloader {
            live,
            paths: files.paths,
            loaded: files.loaded,
        }
    }

    /// Loads, validates and swaps in the files now; returns the new version, or every problem
    /// (one per line) when the configuration was refused.
    ///
    /// ```
    /// use mesh_proxy::{LiveSidecar, reload::{ConfigFiles, Reloader}};
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// # let dir = std::env::temp_dir().join(format!("mesh-proxy-doc-reload-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// // `dir`: a new, empty directory.
    /// let (files, loaded) = ConfigFiles::load(vec![dir.clone()]);
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let live = LiveSidecar::new(loaded.unwrap().config, settings).unwrap();
    /// let reloader = Reloader::new(live.clone(), files);
    /// std::fs::write(dir.join("bad.yaml"), "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: 3}\n").unwrap();
    /// assert!(reloader.reload().is_err());
    /// // Refused whole: the previous configuration keeps serving, and the rejection is counted.
    /// assert_eq!((live.current().version(), live.updates().rejections()), (1, 1));
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn reload(&self) -> Result<u64, ReloadError> {
        let loaded = match Config::load_paths(&self.paths) {
            Ok(loaded) => loaded,
            Err(problems) => {
                let error = ReloadError::Invalid(problems);
                self.live.reject(log_rejected(&error));
                return Err(error);
            }
        };
        for warning in &loaded.warnings {
            tracing::warn!(%warning, "configuration warning");
        }
        // A configuration that cannot run counts its own rejection.
        match self.live.swap(loaded.config) {
            Ok(version) => {
                tracing::info!(version, "configuration reloaded");
                Ok(version)
            }
            Err(error) => {
                let error = ReloadError::Refused(error);
                log_rejected(&error);
                Err(error)
            }
        }
    }

    /// Reloads whenever the files change (checked every `poll`) and on `SIGHUP`, until a value
    /// is sent on `stop` (such as `true`) or its sender is dropped.
    ///
    /// ```
    /// use mesh_proxy::{LiveSidecar, reload::{ConfigFiles, Reloader}};
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let dir = std::env::temp_dir().join(format!("mesh-proxy-doc-reload-run-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// // `dir`: a new, empty directory.
    /// let (files, loaded) = ConfigFiles::load(vec![dir.clone()]);
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let live = LiveSidecar::new(loaded.unwrap().config, settings).unwrap();
    /// let (stop, stopped) = tokio::sync::watch::channel(false);
    /// let reloading = tokio::spawn(Reloader::new(live.clone(), files).run(Duration::from_millis(10), stopped));
    /// let mut versions = live.versions();
    /// std::fs::write(dir.join("new.yaml"), "").unwrap(); // a file added: a change
    /// tokio::time::timeout(Duration::from_secs(30), versions.changed()).await.unwrap().unwrap();
    /// assert_eq!(*versions.borrow(), 2);
    /// stop.send(true).unwrap();
    /// reloading.await.unwrap();
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # }
    /// ```
    pub async fn run(self, poll: Duration, mut stop: watch::Receiver<bool>) {
        let mut seen = self.loaded.clone();
        let mut hangup = hangup_signals();
        let mut ticks = tokio::time::interval(poll);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    let now = self.fingerprint().await;
                    if now == seen {
                        continue;
                    }
                    seen = now;
                }
                Some(()) = next_hangup(&mut hangup) => {
                    seen = self.fingerprint().await;
                }
                _ = stop.changed() => return,
            }
            let reloader = self.clone();
            let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
        }
    }

    async fn fingerprint(&self) -> Fingerprint {
        let paths = self.paths.clone();
        tokio::task::spawn_blocking(move || fingerprint(&paths))
            .await
            .unwrap_or_default()
    }
}

/// Logs every problem of a refused configuration, a line each; returns their text.
fn log_rejected(error: &ReloadError) -> String {
    let problems = error.to_string();
    for problem in problems.lines() {
        tracing::error!(%problem, "configuration rejected; the previous one keeps serving");
    }
    problems
}

/// Why [`Reloader::reload`] refused the files; the configuration in force keeps serving.
///
/// ```
/// use mesh_proxy::reload::ReloadError;
/// use mesh_route::config::Config;
/// let problems = Config::from_yaml_str("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: 3}\n").unwrap_err();
/// let error = ReloadError::Invalid(problems);
/// assert!(error.to_string().contains("VirtualService"), "{error}");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The files do not make a valid configuration: every problem, displayed one per line.
    #[error("{}", lines(.0))]
    Invalid(Vec<Diagnostic>),
    /// The configuration is valid but cannot run as it is (a changed gateway port, say).
    #[error(transparent)]
    Refused(#[from] StartError),
}

/// Every problem, one per line.
fn lines(problems: &[Diagnostic]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The contents of every file the paths stand for, hashed.
fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    let mut files = Vec::new();
    for path in paths {
        // The files loading reads: a directory's YAML files, or the path itself.
        match path.is_dir().then(|| yaml_files(path)) {
            Some(Ok(yaml)) => files.extend(yaml),
            _ => files.push(path.clone()),
        }
    }
    files
        .into_iter()
        .map(|file| {
            let digest = std::fs::read(&file).ok().map(|bytes| {
                let mut hasher = FnvHasher::default();
                hasher.write(&bytes);
                hasher.finish()
            });
            (file, digest)
        })
        .collect()
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

#[cfg(unix)]
fn hangup_signals() -> Hangups {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup_signals() -> Hangups {
    None
}

/// The next `SIGHUP`; never, where there are none.
async fn next_hangup(hangups: &mut Hangups) -> Option<()> {
    #[cfg(unix)]
    if let Some(signal) = hangups {
        return signal.recv().await;
    }
    let _ = hangups;
    std::future::pending().await
}
