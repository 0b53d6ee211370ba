//! The one place a refusal becomes an HTTP answer: its status, its JSON body (`{"error",
//! "field"?, "reason"}`, one shape for every route) and its `Retry-After`.
//!
//! The pipeline refuses with an [`IngestError`], the query API with a [`QueryError`], and this
//! layer with the variants of its own below; none of them knows HTTP but through this map. The
//! statuses of ingest refusals are `pathlight_ingest`'s ([`IngestError::status`]): the edge
//! worker answers the same refusals of the same batches, and must answer them alike.

use super::response::{Resp, json};
use crate::error::{ErrorBody, IngestError};
use crate::query::QueryError;
use http::{HeaderValue, StatusCode, header};
use std::time::Duration;

/// Every refusal an HTTP route answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The pipeline refused a batch (or a relayed one).
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The query API refused a question, or ClickHouse failed to answer it.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// No such route, file or endpoint (also `/v1/relay` when no relay token is set).
    #[error("not found")]
    NotFound,
    /// `/v1/relay` without the relay workers' token.
    #[error("missing or wrong relay token")]
    RelayUnauthorized,
    /// Too many wrong API tokens from this address lately.
    #[error("too many wrong API tokens from this address; retry later")]
    Throttled(Duration),
    /// A known path asked with a method it does not take; the methods it takes.
    #[error("method not allowed: this path takes {0}")]
    MethodNotAllowed(&'static str),
    /// Sign-in, sessions and account settings refused.
    #[error(transparent)]
    Account(#[from] crate::accounts::AccountError),
    /// A state-changing request of the dashboards' from a page of another origin (or none).
    #[error("this request must come from the dashboards' own pages (Origin)")]
    CrossOrigin,
    /// A body that is not the JSON object the route takes.
    #[error("{0}")]
    BadBody(String),
    /// A JSON body larger than the route takes, its limit in bytes.
    #[error("the body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// A change of sites or keys refused (`/api/v1/sites…`).
    #[error(transparent)]
    Site(#[from] crate::sites::SiteError),
    /// A signed-in account that may not do this (manage a site it is no admin of).
    #[error("your account may not manage this site")]
    Forbidden,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Ingest(e) => e.status(),
            ApiError::Query(e) => match e {
                QueryError::BadParam { .. } | QueryError::UnknownParams { .. } => {
                    StatusCode::BAD_REQUEST
                }
                QueryError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                QueryError::NotFound => StatusCode::NOT_FOUND,
                QueryError::OriginNotAllowed(_) | QueryError::OutOfScope { .. } => {
                    StatusCode::FORBIDDEN
                }
                QueryError::Storage(_) => StatusCode::BAD_GATEWAY,
            },
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::RelayUnauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Account(e) => {
                use crate::accounts::AccountError as A;
                match e {
                    A::InvalidCredentials | A::TotpRequired | A::TotpInvalid | A::NotSignedIn => {
                        StatusCode::UNAUTHORIZED
                    }
                    A::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
                    A::EmailTaken => StatusCode::CONFLICT,
                    A::Invalid(_) => StatusCode::BAD_REQUEST,
                    A::SetupClosed(_) => StatusCode::FORBIDDEN,
                    A::InvitationNotFound | A::ShareNotFound | A::MemberNotFound => {
                        StatusCode::NOT_FOUND
                    }
                    A::PasswordRequired | A::WrongPassword => StatusCode::UNAUTHORIZED,
                    A::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
                }
            }
            ApiError::CrossOrigin | ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::BadBody(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Site(e) => {
                use crate::sites::SiteError as S;
                match e {
                    S::Invalid { .. } => StatusCode::BAD_REQUEST,
                    S::Exists(_) | S::ReadOnly(_) => StatusCode::CONFLICT,
                    S::SiteNotFound(_) | S::KeyNotFound(_) => StatusCode::NOT_FOUND,
                    _ => StatusCode::SERVICE_UNAVAILABLE,
                }
            }
        }
    }

    /// The stable machine-readable reason: the JSON `reason`, and the metrics' label.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::Ingest(e) => e.reason(),
            ApiError::Query(e) => match e {
                QueryError::BadParam { .. } => "bad_param",
                QueryError::UnknownParams { .. } => "unknown_param",
                QueryError::Unauthorized(_) => "unauthorized",
                QueryError::NotFound => "not_found",
                QueryError::OriginNotAllowed(_) => "origin_not_allowed",
                QueryError::OutOfScope { .. } => "forbidden",
                QueryError::Storage(_) => "storage",
            },
            ApiError::NotFound => "not_found",
            ApiError::RelayUnauthorized => "unauthorized",
            ApiError::Throttled(_) => "throttled",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Account(e) => e.reason(),
            ApiError::CrossOrigin => "cross_origin",
            ApiError::BadBody(_) => "bad_body",
            // The word ingest uses for a batch past its limit.
            ApiError::BodyTooLarge(_) => "too_large",
            ApiError::Site(e) => e.reason(),
            ApiError::Forbidden => "forbidden",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        match self {
            ApiError::Ingest(e) => e.body(),
            _ => ErrorBody {
                error: self.to_string(),
                field: match self {
                    ApiError::Query(QueryError::BadParam { param, .. }) => {
                        Some((*param).to_owned())
                    }
                    ApiError::Query(QueryError::UnknownParams { names, .. }) => {
                        names.first().cloned()
                    }
                    ApiError::Site(e) => e.field().map(str::to_owned),
                    _ => None,
                },
                reason: self.reason(),
            },
        }
    }

    /// `Retry-After` seconds, for refusals the sender should retry.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Ingest(e) => e.retry_after(),
            ApiError::Throttled(wait) => Some(wait.as_secs_f64().ceil() as u64),
            ApiError::Account(crate::accounts::AccountError::Throttled(secs)) => Some(*secs),
            ApiError::Account(crate::accounts::AccountError::Storage(_))
            | ApiError::Site(crate::sites::SiteError::Storage(_)) => Some(5),
            _ => None,
        }
    }

    /// The answer: status, JSON body, `Retry-After`, and `Allow` with a 405.
    pub fn response(&self) -> Resp {
        let mut r = json(self.status(), &self.body());
        if let Some(secs) = self.retry_after() {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let ApiError::MethodNotAllowed(allow) = self {
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(e: ApiError) -> (u16, serde_json::Value, Option<String>) {
        let r = e.response();
        let retry = r
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = serde_json::to_value(e.body()).unwrap();
        (r.status().as_u16(), body, retry)
    }

    #[test]
    fn every_refusal_has_its_status_reason_and_retry_after() {
        let bad = QueryError::BadParam {
            param: "from",
            detail: "not a date".into(),
        };
        let (status, body, retry) = answer(bad.into());
        assert_eq!((status, retry), (400, None));
        assert_eq!(body["reason"], "bad_param");
        assert_eq!(body["field"], "from");
        assert_eq!(body["error"], "from: not a date");

        let (status, body, _) = answer(QueryError::Unauthorized("shop".into()).into());
        assert_eq!(
            (status, body["reason"].as_str()),
            (401, Some("unauthorized"))
        );
        assert!(body.get("field").is_none());

        let (status, body, retry) = answer(ApiError::Throttled(Duration::from_millis(1_200)));
        assert_eq!((status, retry.as_deref()), (429, Some("2")));
        assert_eq!(body["reason"], "throttled");

        let (status, body, retry) = answer(IngestError::QueueFull.into());
        assert_eq!((status, retry.as_deref()), (503, Some("5")));
        assert_eq!(body["reason"], "queue_full");

        let (status, body, _) = answer(ApiError::RelayUnauthorized);
        assert_eq!(status, 401);
        assert_eq!(body["error"], "missing or wrong relay token");
        assert_eq!(body["reason"], "unauthorized");

        let (status, body, _) = answer(ApiError::NotFound);
        assert_eq!((status, body["reason"].as_str()), (404, Some("not_found")));

        let scope = QueryError::OutOfScope {
            site: "shop".into(),
            scope: "export",
        };
        let (status, body, _) = answer(scope.into());
        assert_eq!((status, body["reason"].as_str()), (403, Some("forbidden")));
        let invalid = crate::sites::SiteError::Invalid {
            field: "origins",
            detail: "not an origin".into(),
        };
        let (status, body, _) = answer(invalid.into());
        assert_eq!(
            (status, &body["field"], &body["reason"]),
            (400, &"origins".into(), &"invalid".into())
        );
        let (status, _, retry) = answer(crate::sites::SiteError::Storage("down".into()).into());
        assert_eq!((status, retry.as_deref()), (503, Some("5")));
        let (status, body, _) = answer(crate::sites::SiteError::ReadOnly("test".into()).into());
        assert_eq!((status, body["reason"].as_str()), (409, Some("read_only")));

        let not_allowed = ApiError::MethodNotAllowed("OPTIONS, POST");
        assert_eq!(
            not_allowed.response().headers()[header::ALLOW],
            "OPTIONS, POST"
        );
        let (status, body, _) = answer(not_allowed);
        assert_eq!(status, 405);
        assert_eq!(body["reason"], "method_not_allowed");
        assert_eq!(
            body["error"],
            "method not allowed: this path takes OPTIONS, POST"
        );
    }

    #[test]
    fn the_apis_refusals_are_the_documents_error_reasons() {
        use crate::accounts::AccountError;
        use crate::sites::SiteError;
        let doc: serde_json::Value = serde_json::from_str(crate::query::OPENAPI).unwrap();
        let documented = &doc["components"]["schemas"]["Error"]["properties"]["reason"]["enum"];
        let refusals: Vec<ApiError> = vec![
            QueryError::BadParam {
                param: "from",
                detail: String::new(),
            }
            .into(),
            QueryError::UnknownParams {
                names: vec!["hours".into()],
                takes: &["site"],
            }
            .into(),
            QueryError::Unauthorized("shop".into()).into(),
            QueryError::NotFound.into(),
            QueryError::OriginNotAllowed("https://x".into()).into(),
            QueryError::Storage(clickhouse::error::Error::Custom("down".into())).into(),
            ApiError::NotFound,
            ApiError::Throttled(Duration::from_secs(1)),
            ApiError::MethodNotAllowed("GET"),
            // Read keys without the scope, and the management routes (`/sites…`).
            QueryError::OutOfScope {
                site: "shop".into(),
                scope: "stats",
            }
            .into(),
            AccountError::NotSignedIn.into(),
            ApiError::CrossOrigin,
            ApiError::Forbidden,
            ApiError::BadBody("body: expected an object".into()),
            ApiError::BodyTooLarge(16_384),
            SiteError::Invalid {
                field: "id",
                detail: String::new(),
            }
            .into(),
            SiteError::Exists("shop".into()).into(),
            SiteError::ReadOnly("shop".into()).into(),
            SiteError::SiteNotFound("shop".into()).into(),
            SiteError::KeyNotFound("k".into()).into(),
            SiteError::Storage("down".into()).into(),
            // Members, invitations and shared links (`/sites/{id}/…`, `/invitations…`,
            // `/shares…`).
            AccountError::Invalid("role".into()).into(),
            AccountError::Storage("down".into()).into(),
            AccountError::MemberNotFound.into(),
            AccountError::InvitationNotFound.into(),
            AccountError::ShareNotFound.into(),
            AccountError::EmailTaken.into(),
            AccountError::PasswordRequired.into(),
            AccountError::WrongPassword.into(),
        ];
        let mut reasons: Vec<&str> = refusals.iter().map(ApiError::reason).collect();
        reasons.sort_unstable();
        reasons.dedup();
        let mut listed: Vec<&str> = documented
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        listed.sort_unstable();
        assert_eq!(reasons, listed);
    }
}
