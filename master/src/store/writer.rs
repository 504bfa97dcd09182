//! The single writer thread. Mutations queue on a channel; the thread applies
//! every queued one, each as its own atomic batch, then syncs the metadata
//! log once for the whole group and only then answers them (group commit). Between
//! requests it frees removed subtrees in bounded steps.

use std::thread::JoinHandle;

use dfs_common::wire::namespace::Attr;
use dfs_common::ErrorKind;
use tokio::sync::{mpsc, oneshot};

use super::db::{now_ns, Store};
use super::error::NsError;
use super::mutations::{apply, reap_step, Defaults, Mutation, Outcome};
use super::records::Counters;
use super::txn::Txn;

/// Tuning of the writer thread.
#[derive(Clone, Copy, Debug)]
pub struct WriterConfig {
    pub defaults: Defaults,
    /// Most mutations that share one log sync.
    pub group_max: usize,
    /// Most entries the reaper frees in one step.
    pub reap_batch: usize,
    /// Depth of the request queue; senders wait when it is full.
    pub queue_depth: usize,
}

/// A mutation's outcome and the directories it changed (as they are after it).
pub type Applied = (Outcome, Vec<Attr>);

type Reply = oneshot::Sender<Result<Applied, NsError>>;

/// Handle for submitting mutations; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<(Mutation, Reply)>,
}

impl Writer {
    /// Starts the writer thread. It ends when every `Writer` clone is dropped.
    pub fn start(store: Store, config: WriterConfig) -> Result<(Writer, JoinHandle<()>), NsError> {
        let counters = store.counters()?;
        let (tx, rx) = mpsc::channel(config.queue_depth);
        let handle = std::thread::Builder::new()
            .name("ns-writer".into())
            .spawn(move || run(store, config, counters, rx))
            .map_err(|e| NsError::new(ErrorKind::EIO, format!("cannot start writer thread: {e}")))?;
        Ok((Writer { tx }, handle))
    }

    #[cfg(test)]
    pub(crate) fn from_sender(tx: mpsc::Sender<(Mutation, Reply)>) -> Self {
        Writer { tx }
    }

    /// Applies `m` and returns once it is durable.
    pub async fn submit(&self, m: Mutation) -> Result<Outcome, NsError> {
        self.submit_changed(m).await.map(|(outcome, _)| outcome)
    }

    /// As `submit`, with the directories the mutation changed.
    pub async fn submit_changed(&self, m: Mutation) -> Result<Applied, NsError> {
        let (reply, answer) = oneshot::channel();
        let gone = || NsError::new(ErrorKind::EIO, "the namespace writer has stopped");
        self.tx.send((m, reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

fn run(store: Store, config: WriterConfig, mut counters: Counters, mut rx: mpsc::Receiver<(Mutation, Reply)>) {
    let mut reaping = counters.pending_delete > 0;
    loop {
        let first = if reaping {
            match rx.try_recv() {
                Ok(job) => job,
                Err(mpsc::error::TryRecvError::Empty) => {
                    reaping = reap(&store, &mut counters, config.reap_batch);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        } else {
            match rx.blocking_recv() {
                Some(job) => job,
                None => break,
            }
        };
        let mut group = vec![first];
        while group.len() < config.group_max {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let results: Vec<_> = group.iter().map(|(m, _)| apply_one(&store, &mut counters, m, &config)).collect();
        let synced = store.sync();
        for ((_, reply), result) in group.into_iter().zip(results) {
            let answer = match (&synced, result) {
                (Err(e), Ok(_)) => Err(e.clone()),
                (_, r) => r,
            };
            let _ = reply.send(answer); // the caller may have gone; nothing to do
        }
        reaping |= counters.pending_delete > 0;
    }
    if let Err(e) = store.sync() {
        tracing::error!(error = %e, "final metadata sync failed");
    }
}

fn apply_one(store: &Store, counters: &mut Counters, m: &Mutation, config: &WriterConfig) -> Result<Applied, NsError> {
    let mut txn = Txn::new(store, *counters, now_ns());
    let outcome = apply(&mut txn, m, &config.defaults)?;
    let dirs = txn.changed_dirs();
    *counters = txn.commit()?;
    Ok((outcome, dirs))
}

/// One reaper step; returns whether more work is left.
fn reap(store: &Store, counters: &mut Counters, batch: usize) -> bool {
    let mut txn = Txn::new(store, *counters, now_ns());
    let step = reap_step(&mut txn, batch).and_then(|more| Ok((more, txn.commit()?)));
    match step {
        Ok((more, c)) => {
            *counters = c;
            more
        }
        Err(e) => {
            // Leave it for the next start rather than spin on a damaged entry.
            tracing::error!(error = %e, "freeing a removed subtree failed");
            false
        }
    }
}
