//! Problems found while loading and validating configuration.
//!
//! Every problem — a YAML syntax error, an unknown field, a route to a subset that no
//! DestinationRule defines, a field that is parsed but not enforced yet — becomes one
//! [`Diagnostic`] that says where it is (file and document, resource, field path) and what
//! is wrong, so `sidecar --check` can print all of them at once.

use std::fmt;
use std::path::PathBuf;

/// Where a resource came from: a file and the index of the YAML document in it.
///
/// Displays as `FILE (document N)` with N counted from 1, as people count.
///
/// ```
/// use mesh_route::config::Origin;
///
/// let origin = Origin::new("mesh.yaml", 2);
/// assert_eq!(origin.to_string(), "mesh.yaml (document 3)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The file the document was read from (`<inline>` for text passed directly).
    pub file: PathBuf,
    /// Index of the (non-empty) YAML document in the file, counting from 0.
    pub document: usize,
}

impl Origin {
    /// An origin for document `document` of `file`.
    ///
    /// ```
    /// use mesh_route::config::Origin;
    ///
    /// let origin = Origin::new("routes/catalog.yaml", 0);
    /// assert_eq!(origin.file, std::path::Path::new("routes/catalog.yaml"));
    /// assert_eq!(origin.document, 0);
    /// ```
    pub fn new(file: impl Into<PathBuf>, document: usize) -> Self {
        Self {
            file: file.into(),
            document,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (document {})",
            self.file.display(),
            self.document + 1
        )
    }
}

/// How serious a [`Diagnostic`] is.
///
/// ```
/// use mesh_route::config::{Diagnostic, Severity};
///
/// assert_eq!(Diagnostic::warning("unused").severity, Severity::Warning);
/// assert_eq!(Severity::Error.to_string(), "error");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The configuration is rejected.
    Error,
    /// The configuration is accepted, but something deserves attention.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem in the configuration, with everything needed to find it.
///
/// Displayed as `error: FILE (document N) VirtualService ns/name: FIELD: MESSAGE`; the
/// parts that are unknown are left out.
///
/// ```
/// use mesh_route::config::{Diagnostic, Origin};
///
/// let d = Diagnostic::error("subset \"v3\" is not defined")
///     .with_origin(Origin::new("vs.yaml", 0))
///     .with_resource("VirtualService shop/catalog")
///     .with_field("http[0].route[0].destination.subset");
/// assert_eq!(
///     d.to_string(),
///     "error: vs.yaml (document 1) VirtualService shop/catalog: http[0].route[0].destination.subset: subset \"v3\" is not defined",
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file and document, when the problem belongs to one.
    pub origin: Option<Origin>,
    /// The resource, as `Kind namespace/name` (e.g. `VirtualService istioinaction/catalog`).
    pub resource: Option<String>,
    /// The field path inside the resource's `spec` (e.g. `http[1].route[0].destination.subset`).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    /// An error with only a message.
    ///
    /// ```
    /// use mesh_route::config::Diagnostic;
    ///
    /// let d = Diagnostic::error("no hosts");
    /// assert!(d.is_error());
    /// assert_eq!(d.to_string(), "error: no hosts");
    /// ```
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Severity::Error, message)
    }

    /// A warning with only a message.
    ///
    /// ```
    /// use mesh_route::config::Diagnostic;
    ///
    /// let d = Diagnostic::warning("timeout: parsed, not enforced yet");
    /// assert!(!d.is_error());
    /// assert_eq!(d.to_string(), "warning: timeout: parsed, not enforced yet");
    /// ```
    pub fn warning(message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, message)
    }

    fn new(severity: Severity, message: impl Into<String>) -> Self {
        Self {
            severity,
            origin: None,
            resource: None,
            field: None,
            message: message.into(),
        }
    }

    /// Sets where the problem is.
    ///
    /// ```
    /// use mesh_route::config::{Diagnostic, Origin};
    ///
    /// let d = Diagnostic::error("invalid YAML").with_origin(Origin::new("<inline>", 1));
    /// assert_eq!(d.to_string(), "error: <inline> (document 2): invalid YAML");
    /// ```
    #[must_use]
    pub fn with_origin(mut self, origin: Origin) -> Self {
        self.origin = Some(origin);
        self
    }

    /// Sets the resource (`Kind namespace/name`).
    ///
    /// ```
    /// use mesh_route::config::Diagnostic;
    ///
    /// let d = Diagnostic::error("hosts is required").with_resource("VirtualService shop/catalog");
    /// assert_eq!(d.to_string(), "error: VirtualService shop/catalog: hosts is required");
    /// ```
    #[must_use]
    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Sets the field path.
    ///
    /// ```
    /// use mesh_route::config::Diagnostic;
    ///
    /// let d = Diagnostic::warning("parsed, not enforced yet").with_field("http[0].corsPolicy");
    /// assert_eq!(d.field.as_deref(), Some("http[0].corsPolicy"));
    /// assert_eq!(d.to_string(), "warning: http[0].corsPolicy: parsed, not enforced yet");
    /// ```
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Whether this is an error (as opposed to a warning).
    ///
    /// ```
    /// use mesh_route::config::Config;
    ///
    /// // Unknown fields are errors.
    /// let errors = Config::from_yaml_str("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\nspec: {host: x, colour: blue}\n").unwrap_err();
    /// assert!(errors.iter().any(|d| d.is_error()));
    /// ```
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.severity)?;
        let mut located = false;
        if let Some(origin) = &self.origin {
            write!(f, "{origin}")?;
            located = true;
        }
        if let Some(resource) = &self.resource {
            if located {
                f.write_str(" ")?;
            }
            f.write_str(resource)?;
            located = true;
        }
        if located {
            f.write_str(": ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Collects the diagnostics of one resource, filling in its origin and name.
pub(crate) struct Reporter<'a> {
    origin: &'a Origin,
    resource: &'a str,
    /// Prefix put before every field path (e.g. `meshConfig` for an IstioOperator).
    prefix: &'a str,
    out: &'a mut Vec<Diagnostic>,
}

impl<'a> Reporter<'a> {
    /// A reporter for `resource` (`Kind ns/name`) found at `origin`.
    pub(crate) fn new(origin: &'a Origin, resource: &'a str, out: &'a mut Vec<Diagnostic>) -> Self {
        Self {
            origin,
            resource,
            prefix: "",
            out,
        }
    }

    /// Puts `prefix` before every field path reported from now on.
    pub(crate) fn with_prefix(mut self, prefix: &'a str) -> Self {
        self.prefix = prefix;
        self
    }

    /// Reports an error at `field`.
    pub(crate) fn error(&mut self, field: impl AsRef<str>, message: impl Into<String>) {
        self.push(Diagnostic::error(message), field.as_ref());
    }

    /// Reports a warning at `field`.
    pub(crate) fn warning(&mut self, field: impl AsRef<str>, message: impl Into<String>) {
        self.push(Diagnostic::warning(message), field.as_ref());
    }

    fn push(&mut self, diagnostic: Diagnostic, field: &str) {
        let mut diagnostic = diagnostic
            .with_origin(self.origin.clone())
            .with_resource(self.resource);
        let field = join_path(self.prefix, field);
        if !field.is_empty() {
            diagnostic = diagnostic.with_field(field);
        }
        self.out.push(diagnostic);
    }
}

/// Joins two field paths with a dot (`a` + `b[0]` → `a.b[0]`), skipping empty parts.
pub(crate) fn join_path(prefix: &str, field: &str) -> String {
    match (prefix.is_empty(), field.is_empty()) {
        (true, _) => field.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) if field.starts_with('[') => format!("{prefix}{field}"),
        (false, false) => format!("{prefix}.{field}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_every_part() {
        let d = Diagnostic::error(
            "\"version-v3\" is not defined by any DestinationRule for host catalog",
        )
        .with_origin(Origin::new("vs.yaml", 1))
        .with_resource("VirtualService istioinaction/catalog")
        .with_field("http[1].route[0].destination.subset");
        assert_eq!(
            d.to_string(),
            "error: vs.yaml (document 2) VirtualService istioinaction/catalog: \
             http[1].route[0].destination.subset: \"version-v3\" is not defined by any \
             DestinationRule for host catalog"
        );
    }

    #[test]
    fn display_omits_missing_parts() {
        assert_eq!(
            Diagnostic::warning("careful").to_string(),
            "warning: careful"
        );
        let d = Diagnostic::error("bad").with_origin(Origin::new("a.yaml", 0));
        assert_eq!(d.to_string(), "error: a.yaml (document 1): bad");
        let d = Diagnostic::warning("w")
            .with_resource("Sidecar default")
            .with_field("egress");
        assert_eq!(d.to_string(), "warning: Sidecar default: egress: w");
    }

    #[test]
    fn paths_join() {
        assert_eq!(join_path("", "a"), "a");
        assert_eq!(join_path("meshConfig", "a.b"), "meshConfig.a.b");
        assert_eq!(join_path("http", "[0]"), "http[0]");
        assert_eq!(join_path("x", ""), "x");
    }
}
