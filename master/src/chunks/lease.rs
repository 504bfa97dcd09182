//! Lease decisions for a chunk about to be written. At most one primary
//! holds a chunk's lease at a time: while a lease runs and all its replicas
//! are usable it is kept (and extended); if a secondary is lost the same
//! primary gets a new grant at once (the version bump makes the lost replica
//! stale); while it runs but the primary is unreachable, nobody gets a new
//! one until it expires; after that a new grant (with a version bump) is
//! made. A primary that is reachable but gave its replica up (it failed
//! verification and was set aside) cannot act as primary any more, so a new
//! grant is made at once.

use std::time::Instant;

use dfs_proto::{ChunkVersion, NodeId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub primary: NodeId,
    pub version: ChunkVersion,
    pub expires: Instant,
    /// Every replica taking part, primary included.
    pub members: Vec<NodeId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseDecision {
    /// The running lease stands; extend it.
    Keep(Lease),
    /// A lease runs but its primary cannot be reached: retry after this.
    WaitUntil(Instant),
    /// Grant a new lease at the next version; `primary` is the node that
    /// must stay primary (the holder of a running lease), if any.
    Grant { primary: Option<NodeId> },
}

/// `usable(node)` says whether a node is live and still holds the chunk at
/// the lease's version; `live(node)` whether it is reachable at all.
pub fn decide(current: Option<&Lease>, usable: impl Fn(NodeId) -> bool, live: impl Fn(NodeId) -> bool, now: Instant) -> LeaseDecision {
    match current {
        Some(lease) if lease.expires > now && usable(lease.primary) => {
            if lease.members.iter().all(|m| usable(*m)) {
                LeaseDecision::Keep(lease.clone())
            } else {
                LeaseDecision::Grant { primary: Some(lease.primary) }
            }
        }
        Some(lease) if lease.expires > now && !live(lease.primary) => LeaseDecision::WaitUntil(lease.expires),
        _ => LeaseDecision::Grant { primary: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn n(i: u128) -> NodeId {
        NodeId(uuid::Uuid::from_u128(i))
    }

    fn lease(t0: Instant) -> Lease {
        Lease { primary: n(1), version: ChunkVersion(3), expires: t0 + Duration::from_secs(60), members: vec![n(1), n(2), n(3)] }
    }

    #[test]
    fn a_running_lease_is_kept_while_its_replicas_live() {
        let t0 = Instant::now();
        let l = lease(t0);
        assert_eq!(decide(Some(&l), |_| true, |_| true, t0 + Duration::from_secs(59)), LeaseDecision::Keep(l));
    }

    #[test]
    fn a_lost_secondary_means_a_new_grant_to_the_same_primary() {
        let t0 = Instant::now();
        let l = lease(t0);
        assert_eq!(decide(Some(&l), |m| m != n(3), |_| true, t0), LeaseDecision::Grant { primary: Some(n(1)) });
    }

    #[test]
    fn no_second_primary_before_the_old_lease_expires() {
        let t0 = Instant::now();
        let l = lease(t0);
        assert_eq!(decide(Some(&l), |m| m != n(1), |m| m != n(1), t0 + Duration::from_secs(10)), LeaseDecision::WaitUntil(l.expires));
        assert_eq!(decide(Some(&l), |m| m != n(1), |m| m != n(1), l.expires), LeaseDecision::Grant { primary: None });
    }

    #[test]
    fn a_reachable_primary_that_gave_its_replica_up_is_replaced_at_once() {
        let t0 = Instant::now();
        let l = lease(t0);
        assert_eq!(decide(Some(&l), |m| m != n(1), |_| true, t0 + Duration::from_secs(10)), LeaseDecision::Grant { primary: None });
    }

    #[test]
    fn expired_or_absent_leases_are_granted_anew() {
        let t0 = Instant::now();
        assert_eq!(decide(None, |_| false, |_| false, t0), LeaseDecision::Grant { primary: None });
        assert_eq!(decide(Some(&lease(t0)), |_| true, |_| true, t0 + Duration::from_secs(61)), LeaseDecision::Grant { primary: None });
    }
}
