//! Between the masters of a Raft group (#23): openraft's three messages,
//! each as openraft's own JSON (its request; the answer a `Result` of its
//! response or its `RaftError`). Signed with the cluster key, as every
//! call between nodes: only masters of the cluster take part.

use super::endpoints;

endpoints! {
    /// Entries from the leader (none: a heartbeat).
    RaftAppend: POST "/v1/raft/append", Internal, Path = (), Query = (), Request = serde_json::Value, Response = serde_json::Value;
    /// A candidate asking for this master's vote.
    RaftVote: POST "/v1/raft/vote", Internal, Path = (), Query = (), Request = serde_json::Value, Response = serde_json::Value;
    /// A piece of the leader's snapshot, for a master too far behind.
    RaftSnapshot: POST "/v1/raft/snapshot", Internal, Path = (), Query = (), Request = serde_json::Value, Response = serde_json::Value;
}
