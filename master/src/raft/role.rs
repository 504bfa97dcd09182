//! What this master is to the others now: the only master, the leader
//! that serves, or a master that sends clients to the leader.
//!
//! A leader decides groups (`commit::Propose`) once it has applied every
//! entry before its term: its first entry of the term (openraft's blank
//! entry) is applied. It serves clients once it has also taken over chunk
//! management and the users' cache from its store ([`Role::serve`]), so
//! that nothing a client sees comes from an earlier term's memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use openraft::{BasicNode, Raft, RaftMetrics, ServerState};

use super::log_store::NodeId;
use super::machine::Group;

/// Where this master stands, as openraft's metrics say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// It leads in `term` and has applied everything before it.
    Leads { term: u64 },
    /// Another master leads (its base URL, when known), or none yet, or
    /// this one leads but has not caught up yet.
    Follows { leader: Option<String> },
}

/// Where the master of `metrics` stands (pure: openraft's figures in,
/// the decision out).
pub fn standing(metrics: &RaftMetrics<NodeId, BasicNode>) -> Standing {
    let leads = metrics.state == ServerState::Leader && metrics.current_leader == Some(metrics.id);
    let caught_up = metrics.last_applied.is_some_and(|l| l.leader_id.term == metrics.current_term);
    if leads && caught_up {
        return Standing::Leads { term: metrics.current_term };
    }
    let leader = metrics.current_leader.filter(|l| *l != metrics.id);
    Standing::Follows { leader: leader.and_then(|l| metrics.membership_config.membership().get_node(&l)).map(|n| n.addr.clone()) }
}

/// The role of this master, shared by the API, the writer and chunk
/// management.
pub struct Role {
    /// `None`: a single master, which always leads.
    raft: Option<Raft<Group>>,
    /// The term in which this master serves clients (taken over); 0: none.
    served: AtomicU64,
    /// Reads waiting for a confirmation that this master still leads.
    reads: Arc<Mutex<Reads>>,
}

/// Readers waiting for the next confirmation, and whether one is out.
#[derive(Default)]
struct Reads {
    running: bool,
    waiting: Vec<oneshot::Sender<Result<(), String>>>,
}

impl Role {
    /// A master without peers.
    pub fn single() -> Role {
        Role { raft: None, served: AtomicU64::new(0), reads: Arc::default() }
    }

    /// A member of the group `raft` runs.
    pub fn member(raft: Raft<Group>) -> Role {
        Role { raft: Some(raft), served: AtomicU64::new(0), reads: Arc::default() }
    }

    pub fn raft(&self) -> Option<&Raft<Group>> {
        self.raft.as_ref()
    }

    pub fn standing(&self) -> Standing {
        match &self.raft {
            None => Standing::Leads { term: 0 },
            Some(raft) => standing(&raft.metrics().borrow()),
        }
    }

    /// Whether this master answers clients now: the only one, or the
    /// leader that has taken over in its current term.
    pub fn serves(&self) -> bool {
        match self.standing() {
            Standing::Leads { term } => self.raft.is_none() || self.served.load(Ordering::Acquire) == term,
            Standing::Follows { .. } => false,
        }
    }

    /// The leader's base URL, when another master is known to lead.
    pub fn leader(&self) -> Option<String> {
        match self.standing() {
            Standing::Follows { leader } => leader,
            Standing::Leads { .. } => None,
        }
    }

    /// Serves clients in `term`: chunk management and the caches are
    /// taken over.
    pub fn serve(&self, term: u64) {
        self.served.store(term, Ordering::Release);
    }

    /// Stops serving clients until taken over again (the majority did not
    /// confirm this master's lead).
    pub fn unserve(&self) {
        self.served.store(0, Ordering::Release);
    }

    /// Returns once a read may be answered from this master's store and
    /// see every write acknowledged before it started, by any leader: this
    /// master still leads (a heartbeat round with a majority: a leader cut
    /// off from the others no longer passes) and has applied everything
    /// committed (openraft's `ensure_linearizable`). Concurrent reads share
    /// one round: those that arrive while one is out wait for the next, as
    /// the writer's groups share one commit. A single master returns at once.
    pub async fn linearizable(&self) -> Result<(), String> {
        let Some(raft) = &self.raft else { return Ok(()) };
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut reads = self.reads.lock().unwrap_or_else(|p| p.into_inner());
            reads.waiting.push(tx);
            !std::mem::replace(&mut reads.running, true)
        };
        if start {
            // Its own task: a reader that goes away must not stop the others' rounds.
            tokio::spawn(confirm_rounds(raft.clone(), self.reads.clone()));
        }
        rx.await.unwrap_or_else(|_| Err("the read confirmation stopped".into()))
    }

    /// Why a request is refused here: which master to ask instead.
    pub fn refusal(&self) -> String {
        refusal(self.leader().as_deref())
    }
}

/// Confirms leadership for the readers waiting, round after round, until
/// none waits.
async fn confirm_rounds(raft: Raft<Group>, reads: Arc<Mutex<Reads>>) {
    loop {
        let batch = {
            let mut r = reads.lock().unwrap_or_else(|p| p.into_inner());
            if r.waiting.is_empty() {
                r.running = false;
                return;
            }
            std::mem::take(&mut r.waiting)
        };
        let confirmed = raft.ensure_linearizable().await.map(drop).map_err(|e| e.to_string());
        for reader in batch {
            let _ = reader.send(confirmed.clone()); // the reader may have gone
        }
    }
}

/// Why a master that does not lead refuses: which master to ask instead.
pub fn refusal(leader: Option<&str>) -> String {
    match leader {
        Some(leader) => format!("this master does not lead the masters; the leader is {leader}"),
        None => "this master does not lead the masters, and no leader is known yet: try again shortly".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use openraft::{CommittedLeaderId, LogId, Membership, StoredMembership};

    use super::*;

    fn metrics(id: NodeId, state: ServerState, term: u64, leader: Option<NodeId>, applied_term: Option<u64>) -> RaftMetrics<NodeId, BasicNode> {
        let nodes: BTreeMap<NodeId, BasicNode> = (1..=3).map(|n| (n, BasicNode::new(format!("http://m{n}")))).collect();
        let membership = Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes);
        let mut m = RaftMetrics::new_initial(id);
        m.state = state;
        m.current_term = term;
        m.current_leader = leader;
        m.last_applied = applied_term.map(|t| LogId::new(CommittedLeaderId::new(t, 1), 7));
        m.membership_config = Arc::new(StoredMembership::new(None, membership));
        m
    }

    #[test]
    fn a_leader_leads_once_it_has_applied_an_entry_of_its_term() {
        assert_eq!(standing(&metrics(1, ServerState::Leader, 3, Some(1), Some(3))), Standing::Leads { term: 3 });
        // Elected, but the entries before its term are not all applied yet.
        assert_eq!(standing(&metrics(1, ServerState::Leader, 3, Some(1), Some(2))), Standing::Follows { leader: None });
        assert_eq!(standing(&metrics(1, ServerState::Leader, 3, Some(1), None)), Standing::Follows { leader: None });
    }

    #[test]
    fn a_follower_names_the_leader_it_knows() {
        let m = metrics(2, ServerState::Follower, 3, Some(1), Some(3));
        assert_eq!(standing(&m), Standing::Follows { leader: Some("http://m1".into()) });
        let m = metrics(2, ServerState::Candidate, 4, None, Some(3));
        assert_eq!(standing(&m), Standing::Follows { leader: None });
    }
}
