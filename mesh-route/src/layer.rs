//! [`RouteLayer`]: Istio routing as a tower layer.
//!
//! For each request it looks the host and rules up in a [`RouteTable`], then either answers by
//! itself (404 `route not found`, a redirect, a direct response — the last two with the
//! route's response header operations applied) or applies the rule's header operations and
//! rewrite, records what it decided as a [`Routed`] request extension — where the request goes
//! ([`destination`](mesh_core::destination)) and the route's
//! [`RoutePolicy`](mesh_core::policy::RoutePolicy), if it has one
//! ([`route_policy`](mesh_core::policy::route_policy)) — and calls the inner service, which
//! sends the request to that destination. On the way back it tells the layers above the same:
//! a [`Routed`] response extension, or a [`RoutedError`] around a failure.
//! Requests for hosts the table does not know pass through untouched: what to do with them
//! (pass-through or `REGISTRY_ONLY`'s 502) is the caller's policy.

use crate::table::{Action, Decision, RouteScope, RouteTable, Rule};
use http::{Request, Response};
use mesh_core::{Body, BoxError, LocalReplyDetails, MeshError, Routed, RoutedError};
use pin_project::pin_project;
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};
use tower::{Layer, Service};

/// Routes requests with a [`RouteTable`]; see the [module docs](self).
///
/// ```
/// use http_body_util::BodyExt;
/// use mesh_route::{config::Config, layer::RouteLayer};
/// use mesh_core::{Body, body, destination};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: ServiceEntry
/// metadata: {name: catalog}
/// spec:
///   hosts: [catalog]
///   resolution: STATIC
///   ports: [{number: 80, name: http}]
///   endpoints: [{address: 127.0.0.1, labels: {version: v2}}]
/// ---
/// apiVersion: networking.istio.io/v1
/// kind: DestinationRule
/// metadata: {name: catalog}
/// spec:
///   host: catalog
///   subsets: [{name: v2, labels: {version: v2}}]
/// ---
/// apiVersion: networking.istio.io/v1
/// kind: VirtualService
/// metadata: {name: catalog}
/// spec:
///   hosts: [catalog]
///   http:
///   - route: [{destination: {host: catalog, subset: v2}}]
/// "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let layer = RouteLayer::from_config(&config).unwrap();
/// // The inner service sees the routing decision as a request extension.
/// let svc = ServiceBuilder::new().layer(layer).service(service_fn(|req: http::Request<Body>| async move {
///     let dest = destination(req.extensions()).cloned().unwrap();
///     Ok::<_, std::convert::Infallible>(http::Response::new(body::full(dest.subset.unwrap().to_string())))
/// }));
/// let request = http::Request::get("http://catalog/items").body(body::empty()).unwrap();
/// let response = svc.oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// // The VirtualService sent it to subset v2, which the inner service echoed.
/// assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "v2");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RouteLayer {
    table: Arc<RouteTable>,
    scope: RouteScope,
}

impl RouteLayer {
    /// A layer routing with `table`.
    ///
    /// ```
    /// use mesh_route::{RouteLayer, RouteTable, config::Config};
    /// use std::sync::Arc;
    ///
    /// let config = Config::from_yaml_str("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api}\nspec: {hosts: [api.example.com], http: [{directResponse: {status: 204}}]}\n").unwrap().config;
    /// let table = Arc::new(RouteTable::compile(&config).unwrap());
    /// let layer = RouteLayer::new(table.clone());
    /// assert!(Arc::ptr_eq(layer.table(), &table));
    /// ```
    pub fn new(table: Arc<RouteTable>) -> Self {
        RouteLayer {
            table,
            scope: RouteScope::MESH,
        }
    }

    /// The same layer, routing with the routes of `scope` (a gateway port's, from
    /// [`RouteTable::gateway_scope`]).
    ///
    /// ```
    /// use mesh_route::{RouteLayer, RouteTable, config::{Config, gateway::served_ports}};
    /// use mesh_core::{Body, body};
    /// use std::sync::Arc;
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: edge}\nspec: {servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let table = Arc::new(RouteTable::compile_for(&config, &served_ports(&config, &Default::default()).unwrap(), &Default::default()).unwrap());
    /// let scope = table.gateway_scope(8080).unwrap();
    /// let svc = RouteLayer::new(table).in_scope(scope).layer(service_fn(|_: http::Request<Body>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(body::empty()))
    /// }));
    /// let request = http::Request::get("http://unknown.example.com/").body(body::empty()).unwrap();
    /// let response = svc.oneshot(request).await.unwrap();
    /// // A gateway answers 404 for a host none of its routes claims.
    /// assert_eq!(response.status(), 404);
    /// # }
    /// ```
    pub fn in_scope(mut self, scope: RouteScope) -> Self {
        self.scope = scope;
        self
    }

    /// Compiles `config` and returns a layer routing with it.
    ///
    /// ```
    /// use mesh_route::{RouteLayer, config::Config};
    /// use mesh_core::{Body, body};
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let config = Config::from_yaml_str("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api}\nspec: {hosts: [api.example.com], http: [{directResponse: {status: 204}}]}\n").unwrap().config;
    /// let layer = RouteLayer::from_config(&config).unwrap();
    /// let svc = layer.layer(service_fn(|_: http::Request<Body>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(body::empty()))
    /// }));
    /// let request = http::Request::get("http://api.example.com/").body(body::empty()).unwrap();
    /// let response = svc.oneshot(request).await.unwrap();
    /// assert_eq!(response.status(), 204); // the route's direct response
    /// # }
    /// ```
    pub fn from_config(config: &crate::config::Config) -> Result<Self, crate::table::CompileError> {
        Ok(RouteLayer::new(Arc::new(RouteTable::compile(config)?)))
    }

    /// The table this layer routes with.
    ///
    /// ```
    /// use mesh_route::{RouteLayer, config::Config, table::Decision};
    ///
    /// let config = Config::from_yaml_str("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api}\nspec: {hosts: [api.example.com], http: [{directResponse: {status: 204}}]}\n").unwrap().config;
    /// let layer = RouteLayer::from_config(&config).unwrap();
    /// let request = http::Request::get("http://api.example.com/").body(()).unwrap();
    /// assert!(matches!(layer.table().route(&request), Decision::Matched { .. }));
    /// ```
    pub fn table(&self) -> &Arc<RouteTable> {
        &self.table
    }
}

impl<S> Layer<S> for RouteLayer {
    type Service = Route<S>;

    fn layer(&self, inner: S) -> Route<S> {
        Route {
            table: self.table.clone(),
            scope: self.scope,
            inner,
        }
    }
}

/// The service [`RouteLayer`] produces.
///
/// ```
/// use mesh_route::{RouteLayer, config::Config, layer::Route};
/// use mesh_core::{Body, Routed, body};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let config = Config::from_yaml_str("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api}\nspec: {hosts: [api.example.com], http: [{directResponse: {status: 204}}]}\n").unwrap().config;
/// let svc: Route<_> = RouteLayer::from_config(&config).unwrap().layer(service_fn(|_: http::Request<Body>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(body::empty()))
/// }));
/// let request = http::Request::get("http://api.example.com/").body(body::empty()).unwrap();
/// let response = svc.oneshot(request).await.unwrap();
/// // The response says which route answered it.
/// assert_eq!(&*response.extensions().get::<Routed>().unwrap().route.name, "api.0");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Route<S> {
    table: Arc<RouteTable>,
    scope: RouteScope,
    inner: S,
}

impl<S, B> Service<Request<B>> for Route<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = RouteFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let (rule, routed, matched_prefix) = match self.table.route_in(self.scope, &request) {
            Decision::UnknownHost => {
                return RouteFuture::inner(self.inner.call(request), [None, None], None);
            }
            Decision::NoRule => return RouteFuture::local(MeshError::RouteNotFound.to_response()),
            Decision::Matched {
                rule,
                routed,
                matched_prefix,
                ..
            } => (rule, routed, matched_prefix),
        };
        match &rule.action {
            Action::Redirect(redirect) => {
                let authority = crate::matcher::request_authority(&request).unwrap_or("");
                let listener_port = self.table.listener_port(self.scope);
                let response = redirect.respond(&request, authority, matched_prefix, listener_port);
                local_reply(rule, &routed[0], response)
            }
            Action::Direct(direct) => local_reply(rule, &routed[0], direct.respond()),
            Action::Route {
                destinations,
                total,
            } => {
                let (index, chosen) = Rule::pick(destinations, *total);
                chosen.request_ops.apply(request.headers_mut());
                rule.request_ops.apply(request.headers_mut());
                if !chosen.rewrite.is_empty() {
                    chosen.rewrite.apply(&mut request, matched_prefix);
                }
                // One value for the layers below (the route's policy, the destination) and
                // the layers above (the route, on the response), which the table made once
                // for this route and destination.
                let routed = &routed[index];
                request.extensions_mut().insert(routed.clone());
                let response_ops = [chosen.response_ops.clone(), rule.response_ops.clone()];
                let routed = Some(routed.clone());
                RouteFuture::inner(self.inner.call(request), response_ops, routed)
            }
        }
    }
}

/// A reply `rule` gives by itself (redirect, direct response). Like Envoy, the route's
/// response header operations apply to it too; there is no destination, so no others do.
fn local_reply<F>(rule: &Rule, routed: &Routed, mut response: Response<Body>) -> RouteFuture<F> {
    if let Some(ops) = &rule.response_ops {
        ops.apply(response.headers_mut());
    }
    let extensions = response.extensions_mut();
    extensions.insert(routed.clone());
    // Envoy serves redirects as direct responses too.
    extensions.insert(LocalReplyDetails::fixed("direct_response"));
    RouteFuture::local(response)
}

/// Header operations to apply to the response: the destination's, then the rule's.
type ResponseOps = [Option<Arc<crate::header_ops::HeaderOps>>; 2];

/// Future of [`Route`].
///
/// ```
/// use mesh_route::{RouteLayer, config::Config, layer::RouteFuture};
/// use mesh_core::{Body, body};
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let config = Config::from_yaml_str("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api}\nspec: {hosts: [api.example.com], http: [{directResponse: {status: 204}}]}\n").unwrap().config;
/// let mut svc = RouteLayer::from_config(&config).unwrap().layer(service_fn(|_: http::Request<Body>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(body::empty()))
/// }));
/// let request = http::Request::get("http://api.example.com/").body(body::empty()).unwrap();
/// // The tower contract: wait until the service is ready, then call it.
/// svc.ready().await.unwrap();
/// let future = svc.call(request);
/// // A direct response is answered locally, without calling the inner service.
/// assert!(matches!(future, RouteFuture::Local { .. }));
/// let response = future.await.unwrap();
/// assert_eq!(response.status(), 204);
/// # }
/// ```
#[pin_project(project = RouteFutureProj)]
#[derive(Debug)]
pub enum RouteFuture<F> {
    /// Waiting on the inner service.
    Inner {
        /// The inner future.
        #[pin]
        future: F,
        /// Response header operations to apply.
        response_ops: ResponseOps,
        /// What routing decided (none for a host the table does not know).
        routed: Option<Routed>,
    },
    /// Answered locally.
    Local {
        /// The reply (taken on completion).
        response: Option<Response<Body>>,
    },
}

impl<F> RouteFuture<F> {
    fn inner(future: F, response_ops: ResponseOps, routed: Option<Routed>) -> Self {
        RouteFuture::Inner {
            future,
            response_ops,
            routed,
        }
    }

    fn local(response: Response<Body>) -> Self {
        RouteFuture::Local {
            response: Some(response),
        }
    }
}

impl<F, E> Future for RouteFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<Body>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            RouteFutureProj::Inner {
                future,
                response_ops,
                routed,
            } => {
                let mut response = match std::task::ready!(future.poll(cx)) {
                    Ok(response) => response,
                    Err(error) => {
                        return Poll::Ready(Err(match routed.take() {
                            Some(routed) => RoutedError::new(routed, error.into()).into(),
                            None => error.into(),
                        }));
                    }
                };
                for ops in response_ops.iter().flatten() {
                    ops.apply(response.headers_mut());
                }
                if let Some(routed) = routed.take() {
                    response.extensions_mut().insert(routed);
                }
                Poll::Ready(Ok(response))
            }
            RouteFutureProj::Local { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => panic!("RouteFuture polled after completion"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use http::header::HOST;
    use mesh_core::body;
    use std::{convert::Infallible, sync::Mutex};
    use tower::{ServiceExt, service_fn};

    /// A registered `catalog` service plus a VirtualService for it with `http` routes.
    /// `catalog` in the registry, with `http` as its VirtualService's routes.
    fn config_yaml(http: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: catalog}}\nspec: {{hosts: [catalog], resolution: STATIC, ports: [{{number: 80, name: http}}], endpoints: [{{address: 127.0.0.1}}]}}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: catalog}}\nspec:\n  hosts: [catalog]\n  http:\n{http}\n"
        )
    }

    fn config(http: &str) -> Config {
        let yaml = config_yaml(http);
        match Config::from_yaml_str(&yaml) {
            Ok(loaded) => loaded.config,
            Err(problems) => panic!("{problems:#?}"),
        }
    }

    /// Sends `request` through a [`RouteLayer`] for `http`; returns the reply and the request
    /// head the upstream saw (none for a local reply).
    async fn send(
        http: &str,
        request: Request<Body>,
    ) -> (Response<Body>, Option<http::request::Parts>) {
        let seen = Arc::new(Mutex::new(None));
        let upstream = {
            let seen = seen.clone();
            service_fn(move |request: Request<Body>| {
                *seen.lock().unwrap() = Some(request.into_parts().0);
                async { Ok::<_, Infallible>(Response::new(body::empty())) }
            })
        };
        let layer = RouteLayer::from_config(&config(http)).unwrap();
        let response = layer.layer(upstream).oneshot(request).await.unwrap();
        let parts = seen.lock().unwrap().take();
        (response, parts)
    }

    fn get(uri: &str) -> http::request::Builder {
        Request::get(uri).header(HOST, "catalog")
    }

    #[tokio::test]
    async fn the_layers_below_read_the_policy_and_destination_from_the_one_routed_value() {
        let http = "  - route: [{destination: {host: catalog}}]\n    timeout: 3s";
        let (response, upstream) = send(http, get("/items").body(body::empty()).unwrap()).await;
        let extensions = upstream.unwrap().extensions;
        let routed = extensions.get::<Routed>().expect("routing's decision");
        let timeout = mesh_core::policy::route_policy(&extensions).and_then(|p| p.timeout);
        assert_eq!(timeout, Some(std::time::Duration::from_secs(3)));
        assert_eq!(
            mesh_core::destination(&extensions).map(|d| &*d.host),
            Some("catalog")
        );
        // One value, not a policy and a destination of their own.
        assert_eq!(extensions.len(), 1);
        let reported = response.extensions().get::<Routed>().unwrap();
        assert!(
            std::ptr::eq::<mesh_core::RouteChoice>(&**reported, &**routed),
            "the same one"
        );
    }

    #[tokio::test]
    async fn every_request_of_a_route_and_destination_reports_one_routed_made_with_the_table() {
        // Two match blocks (two route names) and, under each, two destinations by weight.
        let http = "  - name: items\n    match: [{name: beta, headers: {x-beta: {exact: \"1\"}}}, {name: rest, uri: {prefix: /}}]\n    route: [{destination: {host: catalog, subset: v1}, weight: 50}, {destination: {host: catalog, subset: v2}, weight: 50}]";
        let subsets = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: catalog}\nspec: {host: catalog, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}\n---\n";
        let yaml = format!("{subsets}{}", config_yaml(http));
        let config = Config::from_yaml_str(&yaml).unwrap().config;
        let svc =
            RouteLayer::from_config(&config)
                .unwrap()
                .layer(service_fn(|_: Request<Body>| async {
                    Ok::<_, Infallible>(Response::new(body::empty()))
                }));
        let mut seen: Vec<Routed> = Vec::new();
        for round in 0..64 {
            let request = match round % 2 {
                0 => get("/items").header("x-beta", "1"),
                _ => get("/items"),
            };
            let response = svc
                .clone()
                .oneshot(request.body(body::empty()).unwrap())
                .await;
            let routed = response
                .unwrap()
                .extensions()
                .get::<Routed>()
                .unwrap()
                .clone();
            let subset = routed.destination.as_ref().and_then(|d| d.subset.clone());
            assert!(matches!(subset.as_deref(), Some("v1" | "v2")));
            // An equal decision is the very same one, not a copy.
            match seen.iter().find(|s| **s == routed) {
                Some(same) => assert!(std::ptr::eq::<mesh_core::RouteChoice>(&**same, &*routed)),
                None => seen.push(routed),
            }
        }
        let mut names: Vec<_> = seen
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r.route.name,
                    r.destination.as_ref().unwrap().subset.as_deref().unwrap()
                )
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "items.beta/v1",
                "items.beta/v2",
                "items.rest/v1",
                "items.rest/v2"
            ]
        );
    }

    #[tokio::test]
    async fn rewrite_uri_without_uri_condition_replaces_the_root_prefix() {
        let http = "  - match: [{headers: {x-canary: {exact: \"1\"}}}]\n    rewrite: {uri: /v2/}\n    route: [{destination: {host: catalog}}]\n  - rewrite: {uri: /v3/}\n    route: [{destination: {host: catalog}}]";
        let canary = get("/items?x=1").header("x-canary", "1");
        let (_, upstream) = send(http, canary.body(body::empty()).unwrap()).await;
        assert_eq!(upstream.unwrap().uri, "/v2/items?x=1");
        // A rule without any match block is a `prefix: "/"` match too.
        let (_, upstream) = send(http, get("/items?x=1").body(body::empty()).unwrap()).await;
        assert_eq!(upstream.unwrap().uri, "/v3/items?x=1");
    }

    #[tokio::test]
    async fn local_replies_carry_the_route_response_headers() {
        let http = "  - match: [{uri: {prefix: /old}}]\n    redirect: {uri: /new}\n    headers: {response: {set: {x-served-by: mesh}}}\n  - directResponse: {status: 503}\n    headers: {response: {add: {x-served-by: mesh}}}";
        let (response, upstream) = send(http, get("/old").body(body::empty()).unwrap()).await;
        assert!(upstream.is_none());
        assert_eq!(response.status(), 301);
        assert_eq!(response.headers()["x-served-by"], "mesh");
        let (response, _) = send(http, get("/other").body(body::empty()).unwrap()).await;
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["x-served-by"], "mesh");
        // A 503 the route answers itself, not an upstream's (the access log tells them apart).
        assert_eq!(
            response.extensions().get::<LocalReplyDetails>(),
            Some(&LocalReplyDetails::fixed("direct_response"))
        );
    }

    #[tokio::test]
    async fn a_gateway_redirect_from_the_request_port_takes_the_server_port_when_host_has_none() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: edge}\nspec: {servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: shop}\nspec:\n  hosts: [shop.example.com]\n  gateways: [edge]\n  http:\n  - redirect: {authority: new.example.com, derivePort: FROM_REQUEST_PORT}\n";
        let config = crate::config::Config::from_yaml_str(yaml).unwrap().config;
        let ports = crate::config::gateway::served_ports(&config, &Default::default()).unwrap();
        let table = RouteTable::compile_for(&config, &ports, &Default::default()).unwrap();
        let scope = table.gateway_scope(8080).unwrap();
        let svc = RouteLayer::new(Arc::new(table))
            .in_scope(scope)
            .layer(tower::service_fn(|_: Request<Body>| async {
                Ok::<_, Infallible>(Response::new(body::empty()))
            }));
        for (host, location) in [
            ("shop.example.com", "http://new.example.com:8080/items"),
            ("shop.example.com:9090", "http://new.example.com:9090/items"),
        ] {
            let request = Request::get("/items").header(HOST, host);
            let request = request.body(body::empty()).unwrap();
            let response = svc.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), 301, "{host}");
            assert_eq!(
                response.headers()[http::header::LOCATION],
                location,
                "{host}"
            );
        }
    }

    #[tokio::test]
    async fn destination_host_set_rewrites_the_authority() {
        let http = "  - route: [{destination: {host: catalog}, headers: {request: {set: {host: catalog.internal}}}}]";
        let (_, upstream) = send(http, get("/items").body(body::empty()).unwrap()).await;
        assert_eq!(upstream.unwrap().headers[HOST], "catalog.internal");
        let http = "  - route: [{destination: {host: catalog}, headers: {request: {add: {\":authority\": catalog.internal}}}}]";
        let request = Request::get("http://catalog/items").body(body::empty());
        let (_, upstream) = send(http, request.unwrap()).await;
        let upstream = upstream.unwrap();
        assert_eq!(upstream.uri, "http://catalog.internal/items");
        assert_eq!(upstream.headers[HOST], "catalog.internal");
    }

    #[tokio::test]
    async fn route_authority_rewrite_wins_over_a_destination_host_set() {
        let http = "  - rewrite: {authority: route.example.com}\n    route: [{destination: {host: catalog}, headers: {request: {set: {host: dest.example.com}}}}]";
        let (_, upstream) = send(http, get("/").body(body::empty()).unwrap()).await;
        assert_eq!(upstream.unwrap().headers[HOST], "route.example.com");
        let http = "  - headers: {request: {set: {host: route.example.com}}}\n    route: [{destination: {host: catalog}, headers: {request: {set: {host: dest.example.com}}}}]";
        let (_, upstream) = send(http, get("/").body(body::empty()).unwrap()).await;
        assert_eq!(upstream.unwrap().headers[HOST], "route.example.com");
    }
}
