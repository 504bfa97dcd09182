//! Master calls made on the FUSE thread that received the request. Handing
//! a request to the shared runtime and back costs several thread switches,
//! and on a small virtual machine each costs about as much CPU as the
//! master's own work on a create. Each FUSE thread therefore keeps a
//! runtime of its own, with its own connections to the master, and waits
//! on it for calls that need nothing else (the FUSE threads serve nothing
//! while the call runs; there are several of them).

use std::cell::RefCell;
use std::future::Future;

use dfs_client::master::MasterClient;
use dfs_client::Client;

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
                call(h.master.clone()).await
            })),
            None => Err(call),
        }
    })
}

/// Lets this thread's runtime see what happened to its connections while
/// nobody drove it: a connection the master closed meanwhile (it
/// restarted) must leave the pool now, or the next request would be
/// written into it and fail after it was sent, which a mutation cannot
/// retry. Each yield returns after the runtime has polled for I/O events;
/// the second lets the connection's task act on them.
async fn catch_up() {
    for _ in 0..2 {
        tokio::task::yield_now().await;
    }
}
