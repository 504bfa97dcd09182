//! The request id of the client operation under way (`x-dfs-request-id`):
//! every request a write, a read or an open file makes, to the master and
//! to chunkservers, carries the same id, and the daemons log under it and
//! pass it on, so one operation can be followed through every daemon's log.
//!
//! A caller may name the id ([`with_request_id`]); otherwise each
//! operation (`Client::write_at`, `read_at`, `append`, `truncate`, one
//! `FileWriter` or `FileReader`) makes one, and a lone call to the master
//! gets one of its own.

use std::future::Future;

pub use dfs_proto::wire::request_id::{RequestId, HEADER_REQUEST_ID};

tokio::task_local! {
    /// The id of the operation the calling task works for.
    static OPERATION: RequestId;
}

/// Runs `operation` with `id` on every request it makes (tasks the library
/// starts for it included).
pub async fn with_request_id<F: Future>(id: RequestId, operation: F) -> F::Output {
    OPERATION.scope(id, operation).await
}

/// Runs the blocking `f` with `id` on every request it makes.
pub(crate) fn sync_scope<R>(id: RequestId, f: impl FnOnce() -> R) -> R {
    OPERATION.sync_scope(id, f)
}

/// The id of the operation under way, if any.
pub(crate) fn current() -> Option<RequestId> {
    OPERATION.try_with(RequestId::clone).ok()
}

/// The id for an operation starting now: the one under way (an operation
/// inside another is part of it), else a fresh one.
pub(crate) fn for_operation() -> RequestId {
    current().unwrap_or_else(RequestId::fresh)
}

/// Runs `f` as one operation: under the id already under way, or a fresh one.
pub(crate) async fn operation<F: Future>(f: F) -> F::Output {
    with_request_id(for_operation(), f).await
}

/// `future` with the id under way (and the user acted for), for a task
/// started on its behalf.
pub(crate) fn carry<F: Future>(future: F) -> impl Future<Output = F::Output> {
    let id = current();
    let future = crate::auth::carry(future);
    async move {
        match id {
            Some(id) => with_request_id(id, future).await,
            None => future.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_operation_keeps_the_id_under_way_and_makes_one_otherwise() {
        assert_eq!(current(), None);
        let named = RequestId::parse("named-1").unwrap();
        let inner = with_request_id(named.clone(), operation(async { current() })).await;
        assert_eq!(inner, Some(named.clone()));
        let (a, b) = (operation(async { current() }).await, operation(async { current() }).await);
        assert!(a.is_some() && b.is_some() && a != b, "{a:?} {b:?}");
        let spawned = with_request_id(named.clone(), async { tokio::spawn(carry(async { current() })).await.unwrap() }).await;
        assert_eq!(spawned, Some(named));
    }
}
