//! Checks a journal file's bytes before SQLite opens it.
//!
//! SQLite treats an empty file as a new database, and opening a damaged one may succeed until the
//! damaged page is read. So before a journal is opened, its header is read directly: an empty
//! file, a file shorter than its SQLite header, a file shorter than the page count its header
//! records, or a file that does not start with the SQLite magic are refused with a typed error
//! naming the file, and nothing is written to it.
//!
//! The page-count check is skipped while a non-empty write-ahead log (`<file>-wal`) is beside the
//! file: after a crash during a checkpoint the main file may legitimately lag its header until
//! SQLite replays the log. `PRAGMA quick_check`, run at every open, covers that case.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Corruption, JournalError};

/// The 16 bytes every SQLite 3 database starts with.
pub const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// Length of the SQLite database header.
pub const SQLITE_HEADER_LEN: usize = 100;

/// The write-ahead log SQLite keeps beside `path`.
pub fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Refuses files that are missing, empty, not SQLite, or shorter than their header says.
pub fn check_file(path: &Path) -> Result<(), JournalError> {
    let io = |source: std::io::Error| JournalError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(JournalError::Missing {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(io(e)),
    };
    let len = file.metadata().map_err(io)?.len();
    if len == 0 {
        return Err(JournalError::Truncated {
            path: path.to_owned(),
            detail: "the file is empty (0 bytes)".into(),
        });
    }
    let mut header = [0u8; SQLITE_HEADER_LEN];
    let mut got = 0;
    while got < header.len() {
        let n = file.read(&mut header[got..]).map_err(io)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let magic_len = got.min(SQLITE_MAGIC.len());
    if header[..magic_len] != SQLITE_MAGIC[..magic_len] {
        return Err(JournalError::NotSqlite {
            path: path.to_owned(),
            detail: format!(
                "it starts with {:02x?}, not the SQLite magic",
                &header[..magic_len]
            ),
        });
    }
    if got < SQLITE_HEADER_LEN {
        return Err(JournalError::Truncated {
            path: path.to_owned(),
            detail: format!("{len} bytes, shorter than the {SQLITE_HEADER_LEN}-byte SQLite header"),
        });
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536u64,
        n if n >= 512 && n.is_power_of_two() => u64::from(n),
        n => {
            return Err(JournalError::Corrupt {
                path: path.to_owned(),
                corruption: Corruption::Header(format!("page size {n}")),
            });
        }
    };
    let wal_len = std::fs::metadata(wal_path(path)).map_or(0, |m| m.len());
    if wal_len > 0 {
        return Ok(());
    }
    let be32 = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let pages = u64::from(be32(28));
    let header_size_valid = be32(24) == be32(92);
    if len % page_size != 0 || (header_size_valid && len < pages * page_size) {
        return Err(JournalError::Truncated {
            path: path.to_owned(),
            detail: format!(
                "{len} bytes, but the header records {pages} pages of {page_size} bytes ({} bytes)",
                pages * page_size
            ),
        });
    }
    Ok(())
}
