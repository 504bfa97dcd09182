//! The chunkserver's endpoints. Failures answer `{"error", "message"}`
//! ([`crate::ErrorBody`]) with the status of the kind.

use super::{endpoints, HtmlPage, MetricsText, RawBytes};
use crate::ids::ChunkHandle;
use crate::local_reads::LocalEndpoint;
use crate::wire::chunks::{self, ChunkserverStatus, DataQuery, DownloadQuery, ReplicaReport, ReplicateChunk, SetReplicaVersion, VerifyAnswer, VerifyReplica};
use crate::wire::namespace::Done;

endpoints! {
    // Data: a client with a chunk token, or a peer forwarding a write
    // (signed); the handler checks which.
    /// Bytes of a replica, verified against its checksums (`length` bytes
    /// from `offset`, clipped at the replica's end).
    ReadData: GET "/v1/chunks/{handle}/data", Public, Path = ChunkHandle, Query = DataQuery, Request = (), Response = RawBytes;
    /// Writes at `offset`, forwarded down the chain in `x-dfs-forward`;
    /// answers once every replica of the chain has the bytes.
    WriteData: PUT "/v1/chunks/{handle}/data", Public, Path = ChunkHandle, Query = DataQuery, Request = RawBytes, Response = Done;
    /// Puts a replica's bytes on disk (a writer's fsync or durable close).
    Fsync: POST "/v1/chunks/{handle}/fsync", Public, Path = ChunkHandle, Query = DataQuery, Request = (), Response = Done;

    // This node.
    StatusPage: GET "/", Public, Path = (), Query = (), Request = (), Response = HtmlPage, Error = HtmlPage;
    Metrics: GET "/metrics", Public, Path = (), Query = (), Request = (), Response = MetricsText;
    Status: GET "/v1/status", Public, Path = (), Query = (), Request = (), Response = ChunkserverStatus;
    /// The short-circuit reads socket (`ENOENT` when they are off).
    Local: GET "/v1/local", Public, Path = (), Query = (), Request = (), Response = LocalEndpoint;
    /// A whole file, read through the client library (the dashboard's
    /// download links land here).
    Files: GET "/files", Public, Path = (), Query = DownloadQuery, Request = (), Response = RawBytes;

    // The master's orders and peers' questions (signed by the cluster key).
    CreateReplica: POST "/v1/chunks/{handle}/create", Internal, Path = ChunkHandle, Query = (), Request = chunks::CreateReplica, Response = Done;
    /// Moves a replica to a new lease's version.
    SetVersion: POST "/v1/chunks/{handle}/version", Internal, Path = ChunkHandle, Query = (), Request = SetReplicaVersion, Response = Done;
    /// Copies the chunk from another chunkserver; answers once it is durable.
    Replicate: POST "/v1/chunks/{handle}/replicate", Internal, Path = ChunkHandle, Query = (), Request = ReplicateChunk, Response = ReplicaReport;
    /// Reads the whole replica against its checksums.
    Verify: POST "/v1/chunks/{handle}/verify", Internal, Path = ChunkHandle, Query = (), Request = VerifyReplica, Response = VerifyAnswer;
    ReplicaInfo: GET "/v1/chunks/{handle}", Internal, Path = ChunkHandle, Query = (), Request = (), Response = chunks::ReplicaInfo;
}
