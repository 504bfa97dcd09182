//! Loading the replicas of `chunks/` at open. Damage is never fatal: a file
//! that is not part of a sound replica is moved to `quarantine/` and
//! reported, and the store opens with the rest. A replica written since its
//! last sync is checked, and one whose last blocks were torn by a crash is
//! cut back to its sound part and kept (`recover`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;

use dfs_proto::ChunkHandle;

use super::disk_layout::{data_name, file_role, meta_name, DiskLayout, FileRole};
use super::error::ChunkError;
use super::meta::{ChunkMeta, FORMAT_V2};
use super::recover::{self, Verdict};

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

/// The replica's metadata if both files are present and sound (after any
/// recovery of a torn tail), else why not.
fn load_one(layout: &DiskLayout, handle: ChunkHandle, files: &Found) -> Result<ChunkMeta, String> {
    match (files.meta, files.data) {
        (true, true) => {}
        (false, _) => return Err("data file without metadata".into()),
        (true, false) => return Err("metadata without data file".into()),
    }
    let meta_path = layout.meta_path(handle);
    let bytes = fs::read(&meta_path).map_err(|e| format!("cannot read metadata: {e}"))?;
    let (mut meta, format) = ChunkMeta::decode(handle, &bytes).map_err(|e| format!("damaged metadata: {e}"))?;
    let data_path = layout.data_path(handle);
    let data_bytes = fs::metadata(&data_path).map_err(|e| format!("cannot stat data file: {e}"))?.len();
    if recover::needs_scan(&meta, data_bytes) {
        // Opened only here: most replicas were synced since their last write.
        let data = fs::File::open(&data_path).map_err(|e| format!("cannot open data file: {e}"))?;
        recover_torn(layout, handle, &mut meta, &data)?;
    } else if format != FORMAT_V2 {
        // An older format: in-place updates assume the current layout.
        layout.replace_meta(handle, &meta.encode(handle)).map_err(|e| format!("cannot rewrite metadata: {e}"))?;
    }
    Ok(meta)
}

/// Checks a replica written since its last sync. A torn one is cut back;
/// a sound one is synced and its metadata rewritten as synced, so the next
/// start does not read it again. Either way the metadata is then current.
fn recover_torn(layout: &DiskLayout, handle: ChunkHandle, meta: &mut ChunkMeta, data: &fs::File) -> Result<(), String> {
    match recover::scan(data, meta).map_err(|e| format!("cannot read data file: {e}"))? {
        Verdict::Sound => {
            data.sync_data().map_err(|e| format!("cannot sync data file: {e}"))?;
            meta.mark_synced_keeping_dirty();
            layout.replace_meta(handle, &meta.encode(handle)).map_err(|e| format!("cannot rewrite metadata: {e}"))
        }
        Verdict::Corrupt { block } => Err(format!("block {block} fails its checksum though it was synced, and a later block does not")),
        Verdict::Torn { keep_bytes } => {
            let (old_len, synced) = (meta.length_bytes, meta.synced_length_bytes);
            recover::truncate(layout, handle, meta, keep_bytes).map_err(|e| format!("cannot cut a torn tail: {e}"))?;
            if keep_bytes < synced {
                tracing::error!(chunk = %handle, old_len, kept = keep_bytes, synced, "replica lost synced bytes: cut back to its sound part");
            } else {
                tracing::warn!(chunk = %handle, old_len, kept = keep_bytes, synced, "replica torn by a crash: cut back to its sound part");
            }
            Ok(())
        }
    }
}
