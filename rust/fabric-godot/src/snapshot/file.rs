//! Snapshot files: [`save`] writes a compressed binary `.res` through a temporary file and a
//! rename, [`load`] reads one back and checks it. Every failure is a [`SnapshotFileError`] that
//! names the file and what is wrong with it.
//!
//! A failed save never touches the file at `path`: the resource is written to [`temp_path`]
//! first, and only a complete write is renamed over `path` (a rename within a folder replaces
//! the old file in one step on POSIX systems). A loaded file must be a `FabricSnapshot` of the
//! known format version whose content matches the checksum written with it, so a truncated,
//! corrupted, foreign or future file is refused instead of giving a zone partial state.

use fabric_core::snapshot::{Snapshot, SnapshotError};
use godot::classes::resource_loader::CacheMode;
use godot::classes::resource_saver::SaverFlags;
use godot::classes::{DirAccess, FileAccess, ResourceLoader, ResourceSaver};
use godot::global::Error;
use godot::prelude::*;

use super::FabricSnapshot;

/// A snapshot file that could not be saved or loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("snapshot file `{path}`: {problem}")]
pub struct SnapshotFileError {
    /// The file, as given.
    pub path: String,
    /// What is wrong.
    pub problem: FileProblem,
}

/// What is wrong with a snapshot file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FileProblem {
    /// The name does not end in `.res` (snapshots are binary resources).
    #[error("a snapshot is saved as a binary resource, its name must end in `.res`")]
    NotRes,
    /// No file at the path.
    #[error("no such file")]
    Missing,
    /// Godot's loader could not read it.
    #[error("not a readable resource (the file is truncated or corrupt)")]
    Unreadable,
    /// It holds another kind of resource.
    #[error("it holds a `{class}` resource, not a FabricSnapshot")]
    Foreign {
        /// The class it holds.
        class: String,
    },
    /// It holds a FabricSnapshot whose data is not usable.
    #[error("{0}")]
    Invalid(#[from] SnapshotError),
    /// The snapshot to save is not valid; nothing was written.
    #[error("not saved, nothing was written: {0}")]
    NotSaved(SnapshotError),
    /// Writing the temporary file failed; the file at the path was left as it was.
    #[error("writing the temporary file `{temp}` failed ({error:?}); the file was left as it was")]
    Write {
        /// The temporary file.
        temp: String,
        /// Godot's error.
        error: Error,
    },
    /// Renaming the temporary file over the path failed; the file was left as it was.
    #[error("renaming `{temp}` over it failed ({error:?}); the file was left as it was")]
    Rename {
        /// The temporary file.
        temp: String,
        /// Godot's error.
        error: Error,
    },
}

impl SnapshotFileError {
    fn new(path: &str, problem: impl Into<FileProblem>) -> Self {
        Self {
            path: path.to_owned(),
            problem: problem.into(),
        }
    }

    /// The Godot error code that stands for it.
    pub fn code(&self) -> Error {
        match &self.problem {
            FileProblem::NotRes => Error::ERR_INVALID_PARAMETER,
            FileProblem::Missing => Error::ERR_FILE_NOT_FOUND,
            FileProblem::Unreadable => Error::ERR_FILE_CORRUPT,
            FileProblem::Foreign { .. } => Error::ERR_FILE_UNRECOGNIZED,
            FileProblem::Invalid(_) | FileProblem::NotSaved(_) => Error::ERR_INVALID_DATA,
            FileProblem::Write { error, .. } | FileProblem::Rename { error, .. } => *error,
        }
    }
}

/// The temporary file [`save`] writes before renaming it to `path`.
pub fn temp_path(path: &str) -> String {
    format!("{path}.partial.res")
}

/// Validates `s` and saves it to `path` (compressed binary resource, checksum written with it).
pub fn save(s: &Snapshot, path: &str) -> Result<(), SnapshotFileError> {
    if !path.ends_with(".res") {
        return Err(SnapshotFileError::new(path, FileProblem::NotRes));
    }
    s.validate()
        .map_err(|e| SnapshotFileError::new(path, FileProblem::NotSaved(e)))?;
    let mut res = FabricSnapshot::from_core(s);
    res.bind_mut().checksum = s.content_checksum();
    let temp = temp_path(path);
    let error = ResourceSaver::singleton()
        .save_ex(&res)
        .path(&temp)
        .flags(SaverFlags::COMPRESS)
        .done();
    if error != Error::OK {
        let _ = DirAccess::remove_absolute(&temp);
        return Err(SnapshotFileError::new(
            path,
            FileProblem::Write { temp, error },
        ));
    }
    let error = DirAccess::rename_absolute(&temp, path);
    if error != Error::OK {
        let _ = DirAccess::remove_absolute(&temp);
        return Err(SnapshotFileError::new(
            path,
            FileProblem::Rename { temp, error },
        ));
    }
    tracing::info!(path, entities = s.len(), "snapshot saved");
    Ok(())
}

/// Loads the snapshot at `path` (never from Godot's resource cache: the file may have changed)
/// and checks it with [`Snapshot::verify`].
pub fn load(path: &str) -> Result<Gd<FabricSnapshot>, SnapshotFileError> {
    if !FileAccess::file_exists(path) {
        return Err(SnapshotFileError::new(path, FileProblem::Missing));
    }
    let res = ResourceLoader::singleton()
        .load_ex(path)
        .cache_mode(CacheMode::IGNORE)
        .done()
        .ok_or_else(|| SnapshotFileError::new(path, FileProblem::Unreadable))?;
    let snap = res.try_cast::<FabricSnapshot>().map_err(|other| {
        SnapshotFileError::new(
            path,
            FileProblem::Foreign {
                class: other.get_class().to_string(),
            },
        )
    })?;
    snap.bind()
        .to_core()
        .verify()
        .map_err(|e| SnapshotFileError::new(path, e))?;
    Ok(snap)
}
