//! A thin JSON client for the master's API that keeps the HTTP status, so
//! tests can assert on error answers as well as on successes.

use serde::Serialize;
use serde_json::Value;

#[derive(Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
}

/// An answer: HTTP status and JSON body (Null if the body was not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The error kind of an error answer ("ENOENT"...), or "" for a success.
    pub fn kind(&self) -> &str {
        self.body.get("error").and_then(Value::as_str).unwrap_or("")
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl Api {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("http client");
        Api { base: base.trim_end_matches('/').to_string(), http }
    }

    pub async fn post<T: Serialize + ?Sized>(&self, path: &str, body: &T) -> reqwest::Result<Reply> {
        let resp = self.http.post(format!("{}{path}", self.base)).json(body).send().await?;
        Self::reply(resp).await
    }

    /// POST of raw bytes, with the JSON content type (for malformed-input tests).
    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> reqwest::Result<Reply> {
        let resp = self.http.post(format!("{}{path}", self.base)).header("content-type", "application/json").body(body).send().await?;
        Self::reply(resp).await
    }

    pub async fn get(&self, path_and_query: &str) -> reqwest::Result<Reply> {
        let resp = self.http.get(format!("{}{path_and_query}", self.base)).send().await?;
        Self::reply(resp).await
    }

    /// GET with query parameters encoded properly.
    pub async fn get_query(&self, path: &str, query: &[(&str, &str)]) -> reqwest::Result<Reply> {
        let resp = self.http.get(format!("{}{path}", self.base)).query(query).send().await?;
        Self::reply(resp).await
    }

    async fn reply(resp: reqwest::Response) -> reqwest::Result<Reply> {
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply { status, body })
    }
}
