//! [`Error`]: why a [`Mesh`](crate::Mesh) could not be built, swapped or addressed.

use mesh_proxy::StartError;
use mesh_route::config::Diagnostic;
use std::fmt;

/// Why a [`Mesh`](crate::Mesh) could not be built, swapped or addressed.
///
/// ```
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: DestinationRule
/// metadata: {name: catalog, namespace: shop}
/// spec: {host: catalog, trafficPolicy: {loadBalancer: {simple: LEAST_REQEST}}}
/// "#;
/// match mesh::Mesh::builder().yaml(yaml).access_log(false).build() {
///     Err(mesh::Error::Config(problems)) => {
///         let text = problems.to_string();
///         assert!(text.contains("DestinationRule shop/catalog"), "{text}");
///         assert!(text.contains("did you mean \"LEAST_REQUEST\""), "{text}");
///     }
///     other => panic!("expected a configuration error, got {other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration has errors (each names its file, document, resource and field).
    #[error("invalid mesh configuration:\n{0}")]
    Config(Diagnostics),
    /// The configuration is valid but cannot be run (a bad Zipkin address, an access log
    /// file that cannot be opened, …).
    #[error(transparent)]
    Start(#[from] StartError),
    /// [`Mesh::client_layer`](crate::Mesh::client_layer) was given something that is not a
    /// host (`catalog`, `catalog:8080`, `catalog.shop.svc.cluster.local`).
    #[error("not a host to address requests to: {0:?}")]
    InvalidHost(String),
}

/// The problems found in a configuration, one per line when displayed.
///
/// ```
/// use mesh::{Diagnostics, config::Diagnostic};
/// let problems = Diagnostics(vec![Diagnostic::error("no hosts"), Diagnostic::warning("unused")]);
/// assert_eq!(problems.to_string(), "  error: no hosts\n  warning: unused");
/// let error = mesh::Error::from(problems.0.clone());
/// assert!(matches!(&error, mesh::Error::Config(d) if *d == problems));
/// assert!(error.to_string().starts_with("invalid mesh configuration:\n  error: no hosts"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  {diagnostic}")?;
        }
        Ok(())
    }
}

impl From<Vec<Diagnostic>> for Error {
    fn from(diagnostics: Vec<Diagnostic>) -> Self {
        Error::Config(Diagnostics(diagnostics))
    }
}
