//! [`ConfigUpdates`]: how configuration updates of a running proxy went — applied, rejected,
//! and why the last rejection happened — for `/stats` and `/config_dump`.

use std::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};

/// Counts configuration updates and keeps the last rejection's reason.
///
/// ```
/// use mesh_proxy::config_updates::ConfigUpdates;
/// let updates = ConfigUpdates::default();
/// updates.rejected("examples/mesh/catalog/10-all-v1.yaml (document 1): bad".into());
/// updates.applied();
/// assert_eq!((updates.success(), updates.rejections()), (1, 1));
/// assert!(updates.last_error().unwrap().contains("bad"));
/// ```
#[derive(Debug, Default)]
pub struct ConfigUpdates {
    success: AtomicU64,
    rejected: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ConfigUpdates {
    /// Counts an update that took effect.
    ///
    /// ```
    /// use mesh_proxy::config_updates::ConfigUpdates;
    /// let updates = ConfigUpdates::default();
    /// updates.applied();
    /// updates.applied();
    /// assert_eq!(updates.success(), 2);
    /// ```
    pub fn applied(&self) {
        self.success.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an update refused whole, for `reason` (the previous configuration serves on).
    ///
    /// ```
    /// use mesh_proxy::config_updates::ConfigUpdates;
    /// let updates = ConfigUpdates::default();
    /// updates.rejected("first".into());
    /// updates.rejected("second".into());
    /// assert_eq!(updates.rejections(), 2);
    /// assert_eq!(updates.last_error().as_deref(), Some("second"));
    /// ```
    pub fn rejected(&self, reason: String) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(reason);
    }

    /// Updates that took effect.
    ///
    /// ```
    /// use mesh_proxy::config_updates::ConfigUpdates;
    /// let updates = ConfigUpdates::default();
    /// assert_eq!(updates.success(), 0);
    /// updates.applied();
    /// assert_eq!(updates.success(), 1);
    /// ```
    pub fn success(&self) -> u64 {
        self.success.load(Ordering::Relaxed)
    }

    /// Updates refused.
    ///
    /// ```
    /// use mesh_proxy::config_updates::ConfigUpdates;
    /// let updates = ConfigUpdates::default();
    /// updates.applied();
    /// assert_eq!(updates.rejections(), 0, "applied updates are not rejections");
    /// updates.rejected("bad YAML".into());
    /// assert_eq!(updates.rejections(), 1);
    /// ```
    pub fn rejections(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Why the last refused update was refused, if one was.
    ///
    /// ```
    /// use mesh_proxy::config_updates::ConfigUpdates;
    /// let updates = ConfigUpdates::default();
    /// assert_eq!(updates.last_error(), None);
    /// updates.rejected("bad YAML".into());
    /// updates.applied();
    /// // A later success does not clear the last rejection's reason.
    /// assert_eq!(updates.last_error().as_deref(), Some("bad YAML"));
    /// ```
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}
