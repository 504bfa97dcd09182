//! The dfs client library and `dfs` shell (not built yet; their issue comes
//! after the data path). The library will ask the master where chunks live
//! and move data straight to and from chunkservers; the shell will offer the
//! verbs of `hdfs dfs`. This crate holds no functionality until then.
