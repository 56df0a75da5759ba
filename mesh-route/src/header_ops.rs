//! Istio `Headers.request` / `Headers.response` operations (`set`, `add`, `remove`), compiled to
//! parsed header names and values so applying them allocates only when `add` must join values.
//!
//! `set` overwrites or adds (Envoy `OVERWRITE_IF_EXISTS_OR_ADD`); `add` appends to an existing
//! value with `,` (`APPEND_IF_EXISTS_OR_ADD`); `remove` strips. A `set`/`add` of `host` or
//! `:authority` is not a header operation in Istio: it becomes an authority rewrite, returned
//! separately by [`HeaderOps::compile`].

use crate::config::HeaderOperations;
use http::{HeaderMap, HeaderName, HeaderValue};

/// Why a header operation could not be compiled.
///
/// ```
/// use mesh_route::{config::HeaderOperations, header_ops::HeaderOps};
///
/// let mut ops = HeaderOperations::default();
/// ops.set.insert("x-ok".into(), "bad\nvalue".into());
/// let error = HeaderOps::compile(&ops, "headers.request").unwrap_err();
/// assert_eq!(error.to_string(), "headers.request: invalid header value \"bad\\nvalue\"");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{field}: invalid header {what} {value:?}")]
pub struct HeaderOpError {
    field: String,
    what: &'static str,
    value: String,
}

/// Compiled header operations, applied in the order remove, set, add.
///
/// ```
/// use http::HeaderMap;
/// use mesh_route::{config::HeaderOperations, header_ops::HeaderOps};
///
/// let mut spec = HeaderOperations::default();
/// spec.remove.push("x-debug".into());
/// spec.set.insert("x-debug".into(), "off".into());
/// let (ops, _) = HeaderOps::compile(&spec, "headers.request").unwrap();
/// let mut headers = HeaderMap::new();
/// headers.insert("x-debug", "on".parse().unwrap());
/// ops.apply(&mut headers);
/// assert_eq!(headers["x-debug"], "off"); // removed, then set
/// ```
#[derive(Clone, Debug, Default)]
pub struct HeaderOps {
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

impl HeaderOps {
    /// Compiles `ops`. Returns the operations and, when they set or add `host`/`:authority`,
    /// the authority to rewrite to (`set` wins over `add`).
    ///
    /// ```
    /// use mesh_route::{config::HeaderOperations, header_ops::HeaderOps};
    ///
    /// let mut spec = HeaderOperations::default();
    /// spec.add.insert("host".into(), "added.example.com".into());
    /// spec.set.insert("host".into(), "set.example.com".into());
    /// let (ops, authority) = HeaderOps::compile(&spec, "headers.request").unwrap();
    /// assert_eq!(authority.unwrap(), "set.example.com");
    /// assert!(ops.is_empty()); // `host` is an authority rewrite, not a header operation
    /// ```
    pub fn compile(
        ops: &HeaderOperations,
        field: &str,
    ) -> Result<(Self, Option<HeaderValue>), HeaderOpError> {
        let err = |what, value: &str| HeaderOpError {
            field: field.to_string(),
            what,
            value: value.to_string(),
        };
        let mut authority = None;
        let mut pairs = |map: &std::collections::BTreeMap<String, String>, is_set: bool| {
            let mut out = Vec::new();
            for (name, value) in map {
                let parsed = HeaderValue::from_str(value).map_err(|_| err("value", value))?;
                if name.eq_ignore_ascii_case("host") || name == ":authority" {
                    if is_set || authority.is_none() {
                        authority = Some(parsed);
                    }
                    continue;
                }
                let header =
                    HeaderName::from_bytes(name.as_bytes()).map_err(|_| err("name", name))?;
                out.push((header, parsed));
            }
            Ok::<_, HeaderOpError>(out)
        };
        let add = pairs(&ops.add, false)?;
        let set = pairs(&ops.set, true)?;
        let remove = ops
            .remove
            .iter()
            .map(|name| HeaderName::from_bytes(name.as_bytes()).map_err(|_| err("name", name)))
            .collect::<Result<_, _>>()?;
        Ok((HeaderOps { set, add, remove }, authority))
    }

    /// Whether there is nothing to do.
    ///
    /// ```
    /// use mesh_route::{config::HeaderOperations, header_ops::HeaderOps};
    ///
    /// assert!(HeaderOps::default().is_empty());
    /// let spec = HeaderOperations { remove: vec!["x-debug".into()], ..Default::default() };
    /// assert!(!HeaderOps::compile(&spec, "headers.response").unwrap().0.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Applies the operations to `headers`.
    ///
    /// ```
    /// use http::HeaderMap;
    /// use mesh_route::{config::HeaderOperations, header_ops::HeaderOps};
    /// let mut ops = HeaderOperations::default();
    /// ops.set.insert("x-version".into(), "v2".into());
    /// ops.add.insert("x-tag".into(), "b".into());
    /// let (ops, _) = HeaderOps::compile(&ops, "headers.request").unwrap();
    /// let mut headers = HeaderMap::new();
    /// headers.insert("x-tag", "a".parse().unwrap());
    /// ops.apply(&mut headers);
    /// assert_eq!(headers["x-version"], "v2");
    /// assert_eq!(headers["x-tag"], "a,b");
    /// ```
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            let joined = headers.get(name).map(|existing| {
                let mut bytes = Vec::with_capacity(existing.len() + 1 + value.len());
                bytes.extend_from_slice(existing.as_bytes());
                bytes.push(b',');
                bytes.extend_from_slice(value.as_bytes());
                HeaderValue::from_bytes(&bytes)
            });
            match joined {
                Some(Ok(joined)) => headers.insert(name.clone(), joined),
                _ => headers.insert(name.clone(), value.clone()),
            };
        }
    }
}
