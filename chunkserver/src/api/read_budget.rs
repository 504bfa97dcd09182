//! The memory budget of reads: a read answer (up to `max_write_bytes`) is
//! in memory from the disk read until its last byte has gone to the socket,
//! so its MiB permits are taken before the read and travel with the bytes.
//! Many concurrent reads wait for permits instead of growing memory
//! without bound; a client that stops reading its answer is cut off by the
//! server's stall timer, which frees them.

use std::sync::Arc;

use bytes::Bytes;
use dfs_proto::ErrorKind;
use dfs_server_kit::http::ApiError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// MiB permits for `bytes` (at least one: every answer holds some memory).
fn permits(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1 << 20).max(1)).unwrap_or(u32::MAX)
}

/// Waits for the permits of a read of up to `length` bytes.
pub async fn reserve(budget: &Arc<Semaphore>, length: u64) -> Result<OwnedSemaphorePermit, ApiError> {
    budget.clone().acquire_many_owned(permits(length)).await.map_err(|_| ApiError::new(ErrorKind::EIO, "shutting down"))
}

/// The bytes read, holding the permits they need (those of a shorter read
/// than reserved go back at once) until the last copy of them is dropped.
pub fn hold(data: Vec<u8>, mut permit: OwnedSemaphorePermit) -> Bytes {
    let keep = permits(data.len() as u64) as usize;
    if permit.num_permits() > keep {
        drop(permit.split(permit.num_permits() - keep));
    }
    Bytes::from_owner(Held { data, _permit: permit })
}

struct Held {
    data: Vec<u8>,
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn permits_travel_with_the_bytes_and_a_short_read_returns_the_rest() {
        let budget = Arc::new(Semaphore::new(8));
        let permit = reserve(&budget, 5 << 20).await.unwrap();
        assert_eq!(budget.available_permits(), 3);
        let bytes = hold(vec![9u8; (1 << 20) + 1], permit);
        assert_eq!(budget.available_permits(), 6, "two MiB kept, three returned");
        let part = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(budget.available_permits(), 6, "a slice still holds them");
        drop(part);
        assert_eq!(budget.available_permits(), 8);
    }

    #[tokio::test]
    async fn reads_past_the_budget_wait() {
        let budget = Arc::new(Semaphore::new(4));
        let first = hold(vec![0u8; 4 << 20], reserve(&budget, 4 << 20).await.unwrap());
        let second = tokio::time::timeout(std::time::Duration::from_millis(50), reserve(&budget, 1)).await;
        assert!(second.is_err(), "a read over the budget went ahead");
        drop(first);
        assert!(reserve(&budget, 1).await.is_ok());
        assert_eq!(permits(0), 1);
    }
}
