//! JSON body, query and path extractors whose rejections are API errors, so
//! that malformed input gets the same `{"error", "message"}` body as
//! everything else.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use dfs_proto::ErrorKind;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON request body.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(json_rejection(r)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(ErrorKind::EMSGSIZE, "request body is over the size limit");
    }
    ApiError::new(ErrorKind::EINVAL, format!("bad JSON body: {}", r.body_text()))
}

/// URL query parameters.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(r) => Err(query_rejection(r)),
        }
    }
}

fn query_rejection(r: QueryRejection) -> ApiError {
    ApiError::new(ErrorKind::EINVAL, format!("bad query: {}", r.body_text()))
}

/// Parameters captured from the path (`/v1/inodes/{id}`).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(r) => Err(path_rejection(r)),
        }
    }
}

fn path_rejection(r: PathRejection) -> ApiError {
    if r.status().is_server_error() {
        // The handler asks for a parameter its route does not capture: our bug.
        return ApiError::new(ErrorKind::EIO, format!("path parameters: {}", r.body_text()));
    }
    ApiError::new(ErrorKind::EINVAL, format!("bad path parameter: {}", r.body_text()))
}

#[cfg(test)]
mod tests {
    use axum::body::{to_bytes, Body};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use axum::Router;

    use super::*;
    use dfs_proto::ErrorBody;

    async fn answer(path: &str) -> (u16, String) {
        async fn handle(ApiPath(h): ApiPath<u64>) -> String {
            h.to_string()
        }
        async fn wrong(ApiPath((a, b)): ApiPath<(u64, u64)>) -> String {
            format!("{a}{b}")
        }
        let app: Router = Router::new().route("/v1/chunks/{handle}/data", get(handle)).route("/wrong/{one}", get(wrong));
        let req = Request::builder().uri(path).body(Body::empty()).expect("request");
        let app = hyper_util::service::TowerToHyperService::new(app);
        let resp = hyper::service::Service::call(&app, req).await.into_response();
        let status = resp.status().as_u16();
        let body = to_bytes(resp.into_body(), 1 << 20).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_bad_path_parameter_is_a_json_einval() {
        assert_eq!(answer("/v1/chunks/42/data").await, (200, "42".to_string()));
        for bad in ["/v1/chunks/notanumber/data", "/v1/chunks/-1/data", "/v1/chunks/18446744073709551616/data", "/v1/chunks/%FF/data"] {
            let (status, body) = answer(bad).await;
            assert_eq!(status, 400, "{bad}: {body}");
            let e: ErrorBody = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{bad}: not JSON ({e}): {body}"));
            assert_eq!(e.error, ErrorKind::EINVAL, "{bad}");
            assert!(e.message.starts_with("bad path parameter"), "{bad}: {}", e.message);
        }
        let (status, body) = answer("/wrong/1").await;
        assert_eq!(status, 500, "{body}");
        assert!(serde_json::from_str::<ErrorBody>(&body).is_ok(), "{body}");
    }
}
