//! Master calls made on the FUSE thread that received the request. Handing
//! a request to the shared runtime and back costs several thread switches,
//! and on a small virtual machine each costs about as much CPU as the
//! master's own work on a create. Each FUSE thread therefore keeps a
//! runtime of its own, with its own connections to the master, and waits
//! on it for calls that need nothing else (a FUSE thread serves nothing
//! else while its call runs; one is always kept free of them).

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

struct Here {
    rt: tokio::runtime::Runtime,
    master: MasterClient,
}

thread_local! {
    static HERE: RefCell<Option<Here>> = const { RefCell::new(None) };
}

/// Runs `call` with a master client on this thread and waits for it. When
/// this thread cannot have a runtime, `call` is handed back (to be run on
/// the shared one). Must not be called from a runtime thread.
pub fn on_this_thread<T, F, Fut>(client: &Client, call: F) -> Result<T, F>
where
    F: FnOnce(MasterClient) -> Fut,
    Fut: Future<Output = T>,
{
    if BUSY.fetch_add(1, Ordering::AcqRel) >= FUSE_THREADS - 1 {
        BUSY.fetch_sub(1, Ordering::AcqRel);
        return Err(call);
    }
    let r = run_here(client, call);
    BUSY.fetch_sub(1, Ordering::AcqRel);
    r
}

fn run_here<T, F, Fut>(client: &Client, call: F) -> Result<T, F>
where
    F: FnOnce(MasterClient) -> Fut,
    Fut: Future<Output = T>,
{
    HERE.with(|here| {
        let mut here = here.borrow_mut();
        if here.is_none() {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => *here = Some(Here { rt, master: client.own_master() }),
                Err(e) => {
                    tracing::warn!(error = %e, "no runtime of its own for a FUSE thread");
                    return Err(call);
                }
            }
        }
        match here.as_ref() {
            Some(h) => Ok(h.rt.block_on(async {
                catch_up().await;
                let r = call(h.master.clone()).await;
                // Let the connection's task finish with the answer and wait
                // for the next one: only then does a close reach it.
                catch_up().await;
                r
            })),
            None => Err(call),
        }
    })
}

/// Runs this thread's runtime for a moment: each yield returns after the
/// runtime has polled for I/O events and run the tasks they woke. Before a
/// call, a connection the master closed while nobody drove the runtime
/// (it restarted) thus leaves the pool, where the next request would
/// otherwise be written into it and fail after it was sent, which a
/// mutation cannot retry.
async fn catch_up() {
    for _ in 0..2 {
        tokio::task::yield_now().await;
    }
}
