//! Reading YAML into a [`Config`]: files and directories, multi-document YAML, the
//! `apiVersion`/`kind` dispatch, metadata, and typed `spec`s with field-path errors.
//!
//! Loading never stops at the first problem: every document of every file is read, each
//! problem becomes a [`Diagnostic`], and validation runs over whatever loaded.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::diagnostic::{Diagnostic, Origin, Reporter, join_path};
use super::mesh_config::MeshConfig;
use super::resource::{ObjectMeta, Resource, ResourceLabel};
use super::suggest::{did_you_mean, readable_serde_message};
use super::validate::{MeshDocument, validate_all};
use super::{Config, Loaded};

/// API versions accepted for the `networking.istio.io` kinds.
const NETWORKING_VERSIONS: &[&str] = &[
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];

/// Kinds read from `networking.istio.io`.
const NETWORKING_KINDS: &[&str] = &[
    "VirtualService",
    "DestinationRule",
    "ServiceEntry",
    "Sidecar",
    "Gateway",
];

/// API versions accepted for the `telemetry.istio.io` kinds.
const TELEMETRY_VERSIONS: &[&str] = &[
    "telemetry.istio.io/v1",
    "telemetry.istio.io/v1beta1",
    "telemetry.istio.io/v1alpha1",
];

/// Kinds recognised but not supported yet, with their API group.
const NOT_YET_SUPPORTED: &[(&str, &str)] = &[];

/// API versions accepted for the `security.istio.io` kinds.
const SECURITY_VERSIONS: &[&str] = &["security.istio.io/v1", "security.istio.io/v1beta1"];

const SUPPORTED_LIST: &str = "networking.istio.io/v1 (or v1beta1, v1alpha3) VirtualService, \
     DestinationRule, ServiceEntry, Sidecar, Gateway; telemetry.istio.io/v1 (or v1beta1, v1alpha1) \
     Telemetry; security.istio.io/v1 (or v1beta1) PeerAuthentication, AuthorizationPolicy; \
     flagger.app/v1beta1 Canary; mesh/v1 MeshConfig; install.istio.io/v1alpha1 IstioOperator";

/// Top-level keys of a resource document.
const DOCUMENT_KEYS: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];

/// How many field errors of one document are reported before giving up on it.
const MAX_ERRORS_PER_DOCUMENT: usize = 100;

/// What a document is, from its `apiVersion` and `kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DocumentKind {
    VirtualService,
    DestinationRule,
    ServiceEntry,
    Sidecar,
    Gateway,
    Telemetry,
    PeerAuthentication,
    AuthorizationPolicy,
    Canary,
    MeshConfig,
    IstioOperator,
    NotYetSupported,
}

impl DocumentKind {
    fn classify(api_version: &str, kind: &str) -> Option<Self> {
        if NETWORKING_VERSIONS.contains(&api_version) {
            match kind {
                "VirtualService" => return Some(Self::VirtualService),
                "DestinationRule" => return Some(Self::DestinationRule),
                "ServiceEntry" => return Some(Self::ServiceEntry),
                "Sidecar" => return Some(Self::Sidecar),
                "Gateway" => return Some(Self::Gateway),
                _ => {}
            }
        }
        if TELEMETRY_VERSIONS.contains(&api_version) && kind == "Telemetry" {
            return Some(Self::Telemetry);
        }
        if SECURITY_VERSIONS.contains(&api_version) {
            match kind {
                "PeerAuthentication" => return Some(Self::PeerAuthentication),
                "AuthorizationPolicy" => return Some(Self::AuthorizationPolicy),
                _ => {}
            }
        }
        match (api_version, kind) {
            ("flagger.app/v1beta1", "Canary") => return Some(Self::Canary),
            ("mesh/v1", "MeshConfig") => return Some(Self::MeshConfig),
            ("install.istio.io/v1alpha1", "IstioOperator") => return Some(Self::IstioOperator),
            _ => {}
        }
        NOT_YET_SUPPORTED
            .iter()
            .any(|(k, group)| *k == kind && api_version.starts_with(group))
            .then_some(Self::NotYetSupported)
    }

    /// Whether `metadata.name` may be left out (istioctl's IstioOperator files often do).
    fn name_optional(self) -> bool {
        matches!(self, Self::IstioOperator | Self::NotYetSupported)
    }
}

/// Loads Istio YAML from any number of files, directories and texts, plus resources built in
/// Rust, and validates them all together, so that a resource may refer to one from another
/// source (a route in one file to a ServiceEntry in another).
///
/// ```
/// use mesh_route::config::Loader;
///
/// let mut loader = Loader::new();
/// loader.add_text("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\nspec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n");
/// loader.add_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: catalog}\nspec: {hosts: [catalog], http: [{route: [{destination: {host: catalog}}]}]}\n");
/// let loaded = loader.finish().expect("the route finds the ServiceEntry of the other text");
/// assert_eq!(loaded.config.virtual_services.len(), 1);
/// ```
pub struct Loader {
    config: Config,
    mesh_documents: Vec<MeshDocument>,
    /// Mesh settings that replace every document's ([`Loader::replace_mesh`]).
    replaced_mesh: Option<MeshConfig>,
    diagnostics: Vec<Diagnostic>,
    files: Vec<PathBuf>,
}

impl Default for Loader {
    fn default() -> Self {
        Self::new()
    }
}

impl Loader {
    /// A loader with nothing loaded yet.
    ///
    /// ```
    /// use mesh_route::config::Loader;
    ///
    /// // Nothing loaded is a valid, empty configuration.
    /// let loaded = Loader::new().finish().unwrap();
    /// assert!(loaded.config.service_entries.is_empty());
    /// assert!(loaded.warnings.is_empty());
    /// ```
    pub fn new() -> Self {
        Self {
            config: Config::default(),
            mesh_documents: Vec::new(),
            replaced_mesh: None,
            diagnostics: Vec::new(),
            files: Vec::new(),
        }
    }

    /// Loads a file, or every `*.yaml`/`*.yml` file of a directory (sorted by name).
    ///
    /// ```
    /// use mesh_route::config::Loader;
    ///
    /// let file = std::env::temp_dir().join(format!("mesh-route-add-path-{}.yaml", std::process::id()));
    /// std::fs::write(&file, "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\nspec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n").unwrap();
    /// let mut loader = Loader::new();
    /// loader.add_path(&file);
    /// std::fs::remove_file(&file).unwrap();
    /// assert_eq!(loader.finish().unwrap().config.service_entries[0].meta.name, "catalog");
    ///
    /// // A missing file is an error diagnostic, reported by `finish`.
    /// let mut loader = Loader::new();
    /// loader.add_path(std::path::Path::new("/nonexistent/mesh.yaml"));
    /// assert!(loader.finish().unwrap_err()[0].message.contains("cannot read"));
    /// ```
    pub fn add_path(&mut self, path: &Path) {
        if path.is_dir() {
            self.add_directory(path);
            return;
        }
        match std::fs::read_to_string(path) {
            Ok(text) => self.add_source(path, &text),
            Err(err) => self.diagnostics.push(Diagnostic::error(format!(
                "cannot read {}: {err}",
                path.display()
            ))),
        }
    }

    fn add_directory(&mut self, dir: &Path) {
        let files = match yaml_files(dir) {
            Ok(files) => files,
            Err(err) => {
                self.diagnostics.push(Diagnostic::error(format!(
                    "cannot read directory {}: {err}",
                    dir.display()
                )));
                return;
            }
        };
        if files.is_empty() {
            self.diagnostics.push(Diagnostic::warning(format!(
                "directory {} contains no .yaml or .yml files",
                dir.display()
            )));
        }
        for file in files {
            self.add_path(&file);
        }
    }

    /// Loads multi-document YAML `text` (diagnostics name the file `<inline>`).
    ///
    /// ```
    /// use mesh_route::config::Loader;
    ///
    /// let mut loader = Loader::new();
    /// // A ServiceEntry registers `catalog`; a DestinationRule gives it subsets.
    /// loader.add_text("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\nspec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: catalog}\nspec: {host: catalog, subsets: [{name: v1, labels: {version: v1}}]}\n");
    /// let config = loader.finish().unwrap().config;
    /// assert_eq!(config.destination_rules[0].spec.subsets[0].name, "v1");
    /// ```
    pub fn add_text(&mut self, text: &str) {
        self.add_source(Path::new("<inline>"), text);
    }

    /// Adds the resources of a configuration built in Rust (their origins name them), and
    /// overlays its mesh settings on those loaded so far.
    ///
    /// ```
    /// use mesh_route::config::{Config, Loader, Resource, VirtualService};
    ///
    /// let mut built = Config::default();
    /// let mut vs = VirtualService::default();
    /// vs.hosts.push("catalog".into());
    /// built.virtual_services.push(Resource::new("catalog", vs));
    /// let mut loader = Loader::new();
    /// loader.add_text("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\nspec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n");
    /// loader.add_config(built);
    /// let config = loader.finish().unwrap().config;
    /// assert_eq!(config.virtual_services[0].origin.file.to_str(), Some("<rust>"));
    /// ```
    pub fn add_config(&mut self, mut config: Config) {
        let mesh = std::mem::take(&mut config.mesh);
        self.config.merge(config);
        // Validated and merged with the mesh documents, in the order they came.
        self.mesh_documents.push(MeshDocument::built(mesh));
    }

    /// Replaces the mesh settings of every document loaded so far, and of any loaded after,
    /// with `mesh` (validated as a document of its own).
    ///
    /// ```
    /// use mesh_route::config::{Loader, MeshConfig};
    ///
    /// let mut loader = Loader::new();
    /// loader.add_text("apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {trustDomain: example.org}\n");
    /// loader.replace_mesh(MeshConfig { root_namespace: Some("mesh-root".into()), ..Default::default() });
    /// let mesh = loader.finish().unwrap().config.mesh;
    /// assert_eq!((mesh.trust_domain, mesh.root_namespace.as_deref()), (None, Some("mesh-root")));
    /// ```
    pub fn replace_mesh(&mut self, mesh: MeshConfig) {
        self.replaced_mesh = Some(mesh);
    }

    /// Loads the YAML `text` as if read from `file`.
    pub(crate) fn add_source(&mut self, file: &Path, text: &str) {
        self.files.push(file.to_path_buf());
        let documents = match serde_saphyr::from_multiple::<Value>(text) {
            Ok(documents) => documents,
            Err(err) => {
                let line = err.location().map(|l| l.line());
                let message = err
                    .to_string()
                    .replace("<input>", &file.display().to_string());
                let document = line.map_or(0, |line| document_at_line(text, line));
                self.diagnostics.push(
                    Diagnostic::error(format!("invalid YAML: {message}"))
                        .with_origin(Origin::new(file, document)),
                );
                return;
            }
        };
        for (index, mut document) in documents.into_iter().enumerate() {
            strip_nulls(&mut document);
            self.add_document(Origin::new(file, index), document);
        }
    }

    fn add_document(&mut self, origin: Origin, document: Value) {
        let Value::Object(mut fields) = document else {
            self.diagnostics.push(
                Diagnostic::error(format!(
                    "a resource must be a mapping with apiVersion, kind, metadata and spec, \
                     found {}",
                    value_kind(&document)
                ))
                .with_origin(origin),
            );
            return;
        };
        let api_version = self.required_string(&mut fields, "apiVersion", &origin);
        let kind = self.required_string(&mut fields, "kind", &origin);
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            return;
        };
        let Some(doc_kind) = DocumentKind::classify(&api_version, &kind) else {
            let known: Vec<&str> = NETWORKING_KINDS
                .iter()
                .copied()
                .chain([
                    "Telemetry",
                    "PeerAuthentication",
                    "Canary",
                    "MeshConfig",
                    "IstioOperator",
                ])
                .collect();
            self.diagnostics.push(
                Diagnostic::error(format!(
                    "unsupported resource: apiVersion \"{api_version}\" kind \"{kind}\"{}; \
                     supported: {SUPPORTED_LIST}",
                    did_you_mean(&kind, known)
                ))
                .with_origin(origin),
            );
            return;
        };
        let metadata = fields.remove("metadata");
        let spec = fields.remove("spec");
        fields.remove("status");
        let Some(meta) = self.parse_metadata(metadata, doc_kind, &kind, &origin) else {
            return;
        };
        let label = ResourceLabel {
            kind: &kind,
            meta: &meta,
        }
        .to_string();
        for key in fields.keys() {
            self.diagnostics.push(
                Diagnostic::error(format!(
                    "unknown field \"{key}\"{}",
                    did_you_mean(key, DOCUMENT_KEYS.iter().copied())
                ))
                .with_origin(origin.clone())
                .with_resource(label.clone())
                .with_field(key.clone()),
            );
        }
        let spec = spec.unwrap_or_else(|| Value::Object(Map::new()));
        match doc_kind {
            DocumentKind::VirtualService => {
                if let Some(spec) = self.parse_spec(spec, &origin, &label, "") {
                    self.config
                        .virtual_services
                        .push(Resource { meta, origin, spec });
                }
            }
            DocumentKind::DestinationRule => {
                if let Some(spec) = self.parse_spec(spec, &origin, &label, "") {
                    self.config
                        .destination_rules
                        .push(Resource { meta, origin, spec });
                }
            }
            DocumentKind::ServiceEntry => {
                if let Some(spec) = self.parse_spec(spec, &origin, &label, "") {
                    self.config
                        .service_entries
                        .push(Resource { meta, origin, spec });
                }
            }
            DocumentKind::Sidecar => {
                if let Some(spec) = self.parse_spec(spec, &origin, &label, "") {
                    self.config.sidecars.push(Resource { meta, origin, spec });
                }
            }
            DocumentKind::Gateway => {
                if let Some(spec) = self.parse_spec(spec, &origin, &label, "") {
                    self.config.gateways.push(Resource { meta, origin, spec });
                }
            }
            DocumentKind::Telemetry => {
                if let Some(spec) = self.parse_spec(spec, &origin, &label, "") {
                    self.config
                        .telemetries
                        .push(Resource { meta, origin, spec });
                }
            }
            DocumentKind::PeerAuthentication => {
                if let Some(spec) = self.parse_spec(spec, &origin, &label, "") {
                    self.config
                        .peer_authentications
                        .push(Resource { meta, origin, spec });
                }
            }
            DocumentKind::AuthorizationPolicy => {
                if let Some(spec) = self.parse_spec(spec, &origin, &label, "") {
                    self.config
                        .authorization_policies
                        .push(Resource { meta, origin, spec });
                }
            }
            DocumentKind::Canary => {
                if let Some(spec) = self.parse_spec(spec, &origin, &label, "") {
                    self.config.canaries.push(Resource { meta, origin, spec });
                }
            }
            DocumentKind::MeshConfig => {
                if let Some(mesh) = self.parse_spec::<MeshConfig>(spec, &origin, &label, "") {
                    self.mesh_documents.push(MeshDocument {
                        origin,
                        label,
                        prefix: "",
                        mesh,
                    });
                }
            }
            DocumentKind::IstioOperator => self.add_istio_operator(spec, origin, label),
            DocumentKind::NotYetSupported => self.diagnostics.push(
                Diagnostic::warning(format!(
                    "kind {kind} is not supported yet; resource ignored"
                ))
                .with_origin(origin)
                .with_resource(label),
            ),
        }
    }

    /// Reads `spec.meshConfig` of an IstioOperator; every other section gets a warning.
    fn add_istio_operator(&mut self, spec: Value, origin: Origin, label: String) {
        let Value::Object(sections) = spec else {
            self.diagnostics.push(
                Diagnostic::error(format!(
                    "spec must be a mapping, found {}",
                    value_kind(&spec)
                ))
                .with_origin(origin)
                .with_resource(label),
            );
            return;
        };
        let mut mesh_config = None;
        for (section, value) in sections {
            if section == "meshConfig" {
                mesh_config = Some(value);
            } else {
                self.diagnostics.push(
                    Diagnostic::warning(format!("IstioOperator spec.{section} is ignored"))
                        .with_origin(origin.clone())
                        .with_resource(label.clone()),
                );
            }
        }
        if let Some(value) = mesh_config
            && let Some(mesh) = self.parse_spec::<MeshConfig>(value, &origin, &label, "meshConfig")
        {
            self.mesh_documents.push(MeshDocument {
                origin,
                label,
                prefix: "meshConfig",
                mesh,
            });
        }
    }

    fn required_string(
        &mut self,
        fields: &mut Map<String, Value>,
        key: &str,
        origin: &Origin,
    ) -> Option<String> {
        match fields.remove(key) {
            Some(Value::String(value)) if !value.is_empty() => Some(value),
            Some(other) if !other.is_string() => {
                self.diagnostics.push(
                    Diagnostic::error(format!(
                        "{key} must be a string, found {}",
                        value_kind(&other)
                    ))
                    .with_origin(origin.clone())
                    .with_field(key),
                );
                None
            }
            _ => {
                self.diagnostics.push(
                    Diagnostic::error(format!("{key} is required"))
                        .with_origin(origin.clone())
                        .with_field(key),
                );
                None
            }
        }
    }

    fn parse_metadata(
        &mut self,
        metadata: Option<Value>,
        doc_kind: DocumentKind,
        kind: &str,
        origin: &Origin,
    ) -> Option<ObjectMeta> {
        /// The metadata fields the mesh reads; Kubernetes' other fields are ignored.
        #[derive(Deserialize)]
        struct MetadataFields {
            name: Option<String>,
            namespace: Option<String>,
            #[serde(default)]
            labels: std::collections::BTreeMap<String, String>,
            #[serde(default)]
            annotations: std::collections::BTreeMap<String, String>,
        }
        let metadata = metadata.unwrap_or_else(|| Value::Object(Map::new()));
        let parsed = match serde_path_to_error::deserialize::<_, MetadataFields>(&metadata) {
            Ok(parsed) => parsed,
            Err(err) => {
                let field = join_path("metadata", &path_string(err.path()));
                let message = readable_serde_message(&err.inner().to_string()).message;
                self.diagnostics.push(
                    Diagnostic::error(message)
                        .with_origin(origin.clone())
                        .with_resource(kind)
                        .with_field(field),
                );
                return None;
            }
        };
        let name = match parsed.name {
            Some(name) if !name.is_empty() => name,
            _ if doc_kind.name_optional() => String::new(),
            _ => {
                self.diagnostics.push(
                    Diagnostic::error("metadata.name is required")
                        .with_origin(origin.clone())
                        .with_resource(kind)
                        .with_field("metadata.name"),
                );
                return None;
            }
        };
        Some(ObjectMeta {
            name,
            namespace: parsed.namespace.filter(|ns| !ns.is_empty()),
            labels: parsed.labels,
            annotations: parsed.annotations,
        })
    }

    /// Deserializes `value` into `T`, reporting errors with their field path. The value
    /// of each field in error is removed and deserialization retried, so that all
    /// problems of a document are reported at once.
    fn parse_spec<T: DeserializeOwned>(
        &mut self,
        mut value: Value,
        origin: &Origin,
        label: &str,
        prefix: &str,
    ) -> Option<T> {
        let mut reporter = Reporter::new(origin, label, &mut self.diagnostics).with_prefix(prefix);
        let mut removed: Vec<String> = Vec::new();
        for _ in 0..MAX_ERRORS_PER_DOCUMENT {
            let err = match serde_path_to_error::deserialize::<_, T>(&value) {
                Ok(parsed) => return Some(parsed),
                Err(err) => err,
            };
            let readable = readable_serde_message(&err.inner().to_string());
            let mut field = path_string(err.path());
            if let Some(missing) = &readable.missing_field {
                field = join_path(&field, missing);
                // A required field whose bad value was removed: already reported.
                if removed.contains(&field) {
                    return None;
                }
            }
            reporter.error(&field, readable.message);
            if readable.missing_field.is_some() || !remove_at(&mut value, err.path()) {
                return None;
            }
            removed.push(field);
        }
        None
    }

    /// Validates everything loaded and returns the config, or every diagnostic when
    /// there is at least one error.
    ///
    /// ```
    /// use mesh_route::config::Loader;
    ///
    /// let mut loader = Loader::new();
    /// // A route to a subset no DestinationRule defines.
    /// loader.add_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: catalog}\nspec: {hosts: [catalog], http: [{route: [{destination: {host: catalog, subset: v9}}]}]}\n");
    /// let errors = loader.finish().unwrap_err();
    /// assert!(errors.iter().any(|d| d.is_error() && d.to_string().contains("v9")), "{errors:?}");
    /// ```
    pub fn finish(mut self) -> Result<Loaded, Vec<Diagnostic>> {
        if let Some(mesh) = self.replaced_mesh.take() {
            self.mesh_documents = vec![MeshDocument::built(mesh)];
        }
        validate_all(&self.config, &self.mesh_documents, &mut self.diagnostics);
        for document in self.mesh_documents {
            self.config.mesh.merge(document.mesh);
        }
        let files = self.files;
        let position = |d: &Diagnostic| {
            d.origin.as_ref().map(|o| {
                let file = files
                    .iter()
                    .position(|f| *f == o.file)
                    .unwrap_or(usize::MAX);
                (file, o.document)
            })
        };
        self.diagnostics.sort_by_key(|d| position(d));
        if self.diagnostics.iter().any(Diagnostic::is_error) {
            Err(self.diagnostics)
        } else {
            Ok(Loaded {
                config: self.config,
                warnings: self.diagnostics,
            })
        }
    }
}

/// The `*.yaml` and `*.yml` files of `dir`, sorted by name: what loading a directory reads.
///
/// ```
/// use mesh_route::config::yaml_files;
///
/// let dir = std::env::temp_dir().join(format!("mesh-route-yaml-files-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// for name in ["b.yml", "a.yaml", "c.txt"] {
///     std::fs::write(dir.join(name), "").unwrap();
/// }
/// let files = yaml_files(&dir).unwrap();
/// std::fs::remove_dir_all(&dir).unwrap();
/// let names: Vec<_> = files.iter().map(|f| f.file_name().unwrap().to_str().unwrap()).collect();
/// assert_eq!(names, ["a.yaml", "b.yml"]);
/// ```
pub fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file() && is_yaml(path))
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// The field path of a serde error, empty for the root.
fn path_string(path: &serde_path_to_error::Path) -> String {
    if path.iter().next().is_none() {
        String::new()
    } else {
        path.to_string()
    }
}

/// Removes the value at `path` from `root`; false when the path does not lead anywhere.
fn remove_at(root: &mut Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut current = root;
    for segment in parents {
        let next = match (segment, current) {
            (Segment::Seq { index }, Value::Array(items)) => items.get_mut(*index),
            (Segment::Map { key } | Segment::Enum { variant: key }, Value::Object(map)) => {
                map.get_mut(key)
            }
            _ => None,
        };
        match next {
            Some(next) => current = next,
            None => return false,
        }
    }
    match (last, current) {
        (Segment::Map { key } | Segment::Enum { variant: key }, Value::Object(map)) => {
            map.remove(key).is_some()
        }
        _ => false,
    }
}

/// Drops `key: null` entries everywhere (YAML `key:` with nothing after it), as the
/// Kubernetes API server does, so they read as absent rather than as type errors.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Index of the non-empty document containing 1-based `line` of `text`.
fn document_at_line(text: &str, line: u64) -> usize {
    let mut document = 0;
    let mut has_content = false;
    for (number, content) in text.lines().enumerate() {
        if number as u64 + 1 >= line {
            break;
        }
        if content.starts_with("---") {
            if has_content {
                document += 1;
                has_content = false;
            }
        } else {
            let trimmed = content.trim();
            if !trimmed.is_empty() && !trimmed.starts_with('#') && trimmed != "..." {
                has_content = true;
            }
        }
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_kinds() {
        for version in NETWORKING_VERSIONS {
            assert_eq!(
                DocumentKind::classify(version, "VirtualService"),
                Some(DocumentKind::VirtualService)
            );
        }
        for version in TELEMETRY_VERSIONS {
            assert_eq!(
                DocumentKind::classify(version, "Telemetry"),
                Some(DocumentKind::Telemetry)
            );
        }
        assert_eq!(
            DocumentKind::classify("telemetry.istio.io/v2", "Telemetry"),
            None
        );
        assert_eq!(
            DocumentKind::classify("mesh/v1", "MeshConfig"),
            Some(DocumentKind::MeshConfig)
        );
        assert_eq!(
            DocumentKind::classify("security.istio.io/v1", "PeerAuthentication"),
            Some(DocumentKind::PeerAuthentication)
        );
        assert_eq!(
            DocumentKind::classify("flagger.app/v1beta1", "Canary"),
            Some(DocumentKind::Canary)
        );
        assert_eq!(DocumentKind::classify("apps/v1", "Deployment"), None);
        assert_eq!(
            DocumentKind::classify("networking.istio.io/v2", "Sidecar"),
            None
        );
    }

    #[test]
    fn a_built_configuration_keeps_every_resource_kind_and_is_validated() {
        let gateway = |port: &str| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: edge, namespace: shop}}\n\
                 spec: {{servers: [{{port: {{number: {port}, name: http, protocol: HTTP}}, hosts: ['*']}}]}}\n"
            )
        };
        let built = Config::from_yaml_str(&gateway("80")).unwrap().config;
        let mut loader = Loader::new();
        loader.add_config(built);
        let loaded = loader.finish().unwrap().config;
        assert_eq!(loaded.gateways.len(), 1);

        // A Gateway built in Rust is checked like one read from a file.
        let mut invalid = Config::from_yaml_str(&gateway("80")).unwrap().config;
        invalid.gateways[0].spec.servers[0].port.number = 0;
        let mut loader = Loader::new();
        loader.add_config(invalid);
        assert!(loader.finish().is_err());
    }

    #[test]
    fn finds_document_of_a_line() {
        let text = "# c\n---\na: 1\n---\nb: [\n";
        assert_eq!(document_at_line(text, 3), 0);
        assert_eq!(document_at_line(text, 5), 1);
        assert_eq!(document_at_line("a: [\n", 1), 0);
    }

    #[test]
    fn nulls_are_absent() {
        let mut v = serde_json::json!({"a": null, "b": [{"c": null, "d": 1}]});
        strip_nulls(&mut v);
        assert_eq!(v, serde_json::json!({"b": [{"d": 1}]}));
    }
}
