//! Loading the replicas of `chunks/` at open. Damage is never fatal: a file
//! that is not part of a sound replica is moved to `quarantine/` and
//! reported, and the store opens with the rest.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;

use dfs_common::ChunkHandle;

use super::disk_layout::{data_name, file_role, meta_name, DiskLayout, FileRole};
use super::error::ChunkError;
use super::meta::ChunkMeta;

/// What `load_replicas` found.
pub(crate) struct Loaded {
    pub replicas: Vec<(ChunkHandle, ChunkMeta)>,
    /// One line per move to quarantine.
    pub quarantined: Vec<String>,
}

/// Which of a replica's two files exist.
#[derive(Default)]
struct Found {
    data: bool,
    meta: bool,
}

pub(crate) fn load_replicas(layout: &DiskLayout) -> Result<Loaded, ChunkError> {
    let mut found: BTreeMap<ChunkHandle, Found> = BTreeMap::new();
    let mut strays: Vec<OsString> = Vec::new();
    let entries = fs::read_dir(&layout.chunks).map_err(|e| ChunkError::io("list", &layout.chunks, e))?;
    for entry in entries {
        let name = entry.map_err(|e| ChunkError::io("list", &layout.chunks, e))?.file_name();
        match name.to_str().map(file_role).unwrap_or(FileRole::Stray) {
            FileRole::Data(h) => found.entry(h).or_default().data = true,
            FileRole::Meta(h) => found.entry(h).or_default().meta = true,
            FileRole::Stray => strays.push(name),
        }
    }

    let mut loaded = Loaded { replicas: Vec::new(), quarantined: Vec::new() };
    for name in strays {
        loaded.quarantined.push(layout.quarantine(&[name], "not part of a replica (a temp file of a crash?)")?);
    }
    for (handle, files) in found {
        match load_one(layout, handle, &files) {
            Ok(meta) => loaded.replicas.push((handle, meta)),
            Err(reason) => {
                let names = [meta_name(handle).into(), data_name(handle).into()];
                loaded.quarantined.push(layout.quarantine(&names, &reason)?);
            }
        }
    }
    Ok(loaded)
}

/// The replica's metadata if both files are present and sound, else why not.
fn load_one(layout: &DiskLayout, handle: ChunkHandle, files: &Found) -> Result<ChunkMeta, String> {
    match (files.meta, files.data) {
        (true, true) => {}
        (false, _) => return Err("data file without metadata".into()),
        (true, false) => return Err("metadata without data file".into()),
    }
    let meta_path = layout.meta_path(handle);
    let bytes = fs::read(&meta_path).map_err(|e| format!("cannot read metadata: {e}"))?;
    let meta = ChunkMeta::decode(handle, &bytes).map_err(|e| format!("damaged metadata: {e}"))?;
    let data_path = layout.data_path(handle);
    let data_bytes = fs::metadata(&data_path).map_err(|e| format!("cannot stat data file: {e}"))?.len();
    if data_bytes < meta.length_bytes {
        return Err(format!("data file has {data_bytes} bytes, below the length {}", meta.length_bytes));
    }
    Ok(meta)
}
