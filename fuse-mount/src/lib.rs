//! `dfs-mount`, a FUSE file system over the client library (not built yet;
//! its issue comes after the client library). This crate holds no
//! functionality until then.
