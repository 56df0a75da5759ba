//! [`CustomTag`]: span tags a user configures (Istio `customTags`, in ProxyConfig tracing or a
//! Telemetry resource): a literal, an environment variable or a request header, each with an
//! optional default. A tag whose source is missing and that has no default is not added.

use http::{HeaderMap, HeaderName};
use std::borrow::Cow;

/// One configured tag.
///
/// ```
/// use mesh_trace::custom_tags::{CustomTag, TagSource};
/// let tenant = CustomTag {
///     name: "tenant".into(),
///     source: TagSource::Header { name: "x-tenant".parse().unwrap(), default: Some("none".into()) },
/// };
/// let mut headers = http::HeaderMap::new();
/// assert_eq!(tenant.value(&headers).as_deref(), Some("none")); // the default
/// headers.insert("x-tenant", "acme".parse().unwrap());
/// assert_eq!(tenant.value(&headers).as_deref(), Some("acme"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomTag {
    /// Tag name.
    pub name: Cow<'static, str>,
    /// Where its value comes from.
    pub source: TagSource,
}

/// Where a [`CustomTag`]'s value comes from.
///
/// ```
/// use mesh_trace::custom_tags::{CustomTag, TagSource};
/// let mesh = CustomTag { name: "mesh".into(), source: TagSource::Literal("east".into()) };
/// let mut headers = http::HeaderMap::new();
/// assert_eq!(mesh.value(&headers).as_deref(), Some("east"));
/// headers.insert("mesh", "west".parse().unwrap()); // a literal ignores the request
/// assert_eq!(mesh.value(&headers).as_deref(), Some("east"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagSource {
    /// A fixed value (environment tags are resolved to this once, at start).
    Literal(String),
    /// A request header, else the default.
    Header {
        /// The header.
        name: HeaderName,
        /// Used when the request has no such header.
        default: Option<String>,
    },
}

impl CustomTag {
    /// An environment tag, resolved now: variable `variable`'s value (through `lookup`, an
    /// environment), else `default`; `None` (no tag) when both are missing.
    ///
    /// ```
    /// use mesh_trace::custom_tags::{CustomTag, TagSource};
    /// let tag = CustomTag::environment("cluster", "CLUSTER", Some("east".into()), |_| None).unwrap();
    /// assert_eq!(tag.source, TagSource::Literal("east".into()));
    /// assert!(CustomTag::environment("cluster", "CLUSTER", None, |_| None).is_none());
    /// ```
    pub fn environment(
        name: impl Into<Cow<'static, str>>,
        variable: &str,
        default: Option<String>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Option<CustomTag> {
        let value = lookup(variable).or(default)?;
        Some(CustomTag {
            name: name.into(),
            source: TagSource::Literal(value),
        })
    }

    /// This tag's value for a request with `headers`, if it has one.
    ///
    /// ```
    /// use mesh_trace::custom_tags::{CustomTag, TagSource};
    /// let tag = CustomTag { name: "user".into(), source: TagSource::Header { name: "x-user".parse().unwrap(), default: None } };
    /// let mut headers = http::HeaderMap::new();
    /// assert_eq!(tag.value(&headers), None);
    /// headers.insert("x-user", "ann".parse().unwrap());
    /// assert_eq!(tag.value(&headers).as_deref(), Some("ann"));
    /// ```
    pub fn value(&self, headers: &HeaderMap) -> Option<String> {
        match &self.source {
            TagSource::Literal(value) => Some(value.clone()),
            TagSource::Header { name, default } => headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .or_else(|| default.clone()),
        }
    }
}
