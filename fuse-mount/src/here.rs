//! Master calls made on the FUSE thread that received the request. Handing
//! a request to the shared runtime and back costs several thread switches,
//! and on a small virtual machine each costs about as much CPU as the
//! master's own work on a create. Each FUSE thread therefore keeps a
//! blocking master client of its own (`Client::blocking_master`) and waits
//! on its calls itself, for calls that need nothing else (a FUSE thread
//! serves nothing else while its call runs; one is always kept free of
//! them).

use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use dfs_client::master::MasterClient;
use dfs_client::Client;

/// Threads that read requests from `/dev/fuse`.
pub const FUSE_THREADS: usize = 4;

/// FUSE threads waiting on a call of their own right now. One is always
/// left free for requests that need no master (a read of an open file, a
/// name known absent), so a master that is slow or restarting cannot hold
/// them all up: beyond that, calls go to the shared runtime.
static BUSY: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MASTER: RefCell<Option<MasterClient>> = const { RefCell::new(None) };
}

/// Runs `call` with this thread's blocking master client and waits for it.
/// When all but one FUSE thread are waiting on calls already, `call` is
/// handed back (to be run on the shared runtime). Must not be called from
/// a runtime thread.
pub fn on_this_thread<T, F, Fut>(client: &Client, call: F) -> Result<T, F>
where
    F: FnOnce(MasterClient) -> Fut,
    Fut: Future<Output = T>,
{
    let busy = Busy::take();
    if busy.was >= FUSE_THREADS - 1 {
        return Err(call);
    }
    let master = MASTER.with(|m| m.borrow_mut().get_or_insert_with(|| client.blocking_master()).clone());
    // The client's calls block instead of waiting on I/O: the future is
    // done after one poll and needs no runtime.
    Ok(futures::executor::block_on(call(master)))
}

/// This thread counted in `BUSY` until dropped (also if the call panics).
struct Busy {
    /// How many were busy before this one.
    was: usize,
}

impl Busy {
    fn take() -> Busy {
        Busy { was: BUSY.fetch_add(1, Ordering::AcqRel) }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.fetch_sub(1, Ordering::AcqRel);
    }
}
