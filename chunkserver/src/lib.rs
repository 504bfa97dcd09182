//! The dfs chunkserver (not built yet; its issue comes after the master's
//! namespace). It will store chunk replicas as local files with a CRC32 per
//! 64 KiB block, verify every read, take part in pipelined replicated writes,
//! scrub in the background, and heartbeat to the master with chunk reports.
//! This crate holds no functionality until then.
