//! Who may read `/metrics`: the request's bearer token is authenticated by a `TokenReview`, and
//! the user it names is authorised by a `SubjectAccessReview` for the non-resource URL `/metrics`,
//! verb `get` (what controller-runtime's `WithAuthenticationAndAuthorization` filter does; grant it
//! with the `metrics-reader` ClusterRole). Decides only; the server turns decisions into 401/403.

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use kube::{Client, core::ObjectMeta};

/// The path and verb a reader must be allowed.
pub const METRICS_PATH: &str = "/metrics";
const METRICS_VERB: &str = "get";

/// The outcome for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Authenticated and allowed: serve the metrics.
    Allowed,
    /// No token, or the API server does not accept it (HTTP 401).
    Unauthenticated,
    /// A known user without `get` on `/metrics` (HTTP 403).
    Forbidden,
    /// The reviews could not be made (HTTP 500); nothing is served.
    Failed,
}

/// Decides whether a bearer token may read metrics.
pub trait Authorize: Send + Sync + 'static {
    /// The decision for `token` (already stripped of `Bearer `).
    fn authorize<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Decision>;
}

/// Asks the API server: `TokenReview`, then `SubjectAccessReview`. Needs `create` on
/// `tokenreviews.authentication.k8s.io` and `subjectaccessreviews.authorization.k8s.io`.
#[derive(Clone)]
pub struct KubeAuthorizer {
    client: Client,
}

impl KubeAuthorizer {
    /// An authorizer asking through `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    async fn decide(&self, token: &str) -> Decision {
        let review = TokenReview {
            metadata: ObjectMeta::default(),
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: None,
            },
            status: None,
        };
        let reviewed = match Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
        {
            Ok(reviewed) => reviewed,
            Err(err) => {
                // The error never carries the token: it is in the request body, not the URL.
                tracing::warn!(error = %err, "TokenReview for a metrics request");
                return Decision::Failed;
            }
        };
        let Some(status) = reviewed.status else {
            return Decision::Unauthenticated;
        };
        let (true, Some(user)) = (status.authenticated.unwrap_or(false), status.user) else {
            return Decision::Unauthenticated;
        };
        let access = SubjectAccessReview {
            metadata: ObjectMeta::default(),
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                groups: user.groups,
                uid: user.uid,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(METRICS_PATH.to_owned()),
                    verb: Some(METRICS_VERB.to_owned()),
                }),
                resource_attributes: None,
            },
            status: None,
        };
        match Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await
        {
            Ok(reviewed) if reviewed.status.as_ref().is_some_and(|s| s.allowed) => {
                Decision::Allowed
            }
            Ok(_) => {
                tracing::debug!(
                    user = user.username.as_deref().unwrap_or(""),
                    "metrics request forbidden"
                );
                Decision::Forbidden
            }
            Err(err) => {
                tracing::warn!(error = %err, "SubjectAccessReview for a metrics request");
                Decision::Failed
            }
        }
    }
}

impl Authorize for KubeAuthorizer {
    fn authorize<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Decision> {
        Box::pin(self.decide(token))
    }
}

/// The bearer token of an `Authorization` header value, if it is one (scheme case-insensitive,
/// as RFC 7235 says).
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token("Bearer abc.def"), Some("abc.def"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
