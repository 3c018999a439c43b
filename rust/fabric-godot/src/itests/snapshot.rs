//! In-engine tests of `FabricSnapshot` files: real `ResourceSaver`/`ResourceLoader` writing and
//! reading real files in a temporary folder. A round trip far from the origin (exact in both
//! precisions), and one test per bad file: truncated, corrupted, wrong version, foreign
//! resource, missing, and saves that must fail without touching the file already there.

use std::path::PathBuf;

use fabric_core::coords::{Micros, metres, micros};
use fabric_core::entity::Entity;
use fabric_core::snapshot::{SNAPSHOT_FORMAT_VERSION, Snapshot, SnapshotError};
use godot::classes::image::Format;
use godot::classes::resource_saver::SaverFlags;
use godot::classes::{Image, Resource, ResourceSaver};
use godot::global::Error;
use godot::prelude::*;

use crate::snapshot::{FabricSnapshot, FileProblem, file};
use crate::test_runner::RustTest;

/// The snapshot tests, chained into [`super::all`].
pub(crate) static TESTS: &[RustTest] = &[
    RustTest {
        name: "snapshot::round_trip_is_exact_far_from_the_origin",
        run: round_trip_is_exact_far_from_the_origin,
    },
    RustTest {
        name: "snapshot::truncated_file_is_refused",
        run: truncated_file_is_refused,
    },
    RustTest {
        name: "snapshot::corrupted_file_is_refused",
        run: corrupted_file_is_refused,
    },
    RustTest {
        name: "snapshot::changed_values_fail_the_checksum",
        run: changed_values_fail_the_checksum,
    },
    RustTest {
        name: "snapshot::wrong_version_is_refused",
        run: wrong_version_is_refused,
    },
    RustTest {
        name: "snapshot::foreign_resources_are_refused",
        run: foreign_resources_are_refused,
    },
    RustTest {
        name: "snapshot::missing_file_is_named",
        run: missing_file_is_named,
    },
    RustTest {
        name: "snapshot::failed_saves_leave_the_file_as_it_was",
        run: failed_saves_leave_the_file_as_it_was,
    },
];

/// A fresh folder for one test's files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Result<Self, String> {
        let dir =
            std::env::temp_dir().join(format!("fabric-snapshot-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self(dir))
    }

    fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `n` entities about 10^7 m from the origin, with fractional micrometres and distinct motion.
fn far_entities(n: u32) -> Vec<Entity> {
    (0..n)
        .map(|i| {
            let x = metres(10_000_000) + micros(i64::from(i)) + Micros::from_bits(0x5555 << 40);
            let y = -metres(10_000_000) - micros(7 * i64::from(i));
            let z = metres(-3) + Micros::from_bits(i128::from(i) << 30);
            let mut e = Entity::at(10 * i + 1, [x, y, z])
                .with_velocity([micros(5), Micros::from_bits(-3), micros(-i64::from(i))])
                .with_acceleration([Micros::DELTA, Micros::ZERO, -Micros::DELTA]);
            e.payload[0] = 0xFFFF_FFFF;
            e.payload[5] = i;
            e
        })
        .collect()
}

fn sample(n: u32) -> Snapshot {
    Snapshot::from_entities("test-fabric", 3, 1234, 1_790_000_000, &far_entities(n))
}

/// Saves `sample(n)` at `path` and checks that it worked.
fn save_sample(n: u32, path: &str) -> Result<Snapshot, String> {
    let s = sample(n);
    file::save(&s, path).map_err(|e| format!("saving a valid snapshot: {e}"))?;
    Ok(s)
}

/// Loads `path`, expecting a failure; returns it.
fn load_fails(path: &str) -> Result<crate::snapshot::SnapshotFileError, String> {
    match file::load(path) {
        Ok(_) => Err(format!("{path} loaded, expected an error")),
        Err(e) => {
            check!(
                e.to_string().contains(path),
                "the error names the file: {e}"
            );
            Ok(e)
        }
    }
}

fn round_trip_is_exact_far_from_the_origin() -> Result<(), String> {
    let dir = TempDir::new("round_trip")?;
    let path = dir.file("world.res");
    let saved = save_sample(500, &path)?;
    let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
    check!(
        bytes.starts_with(b"RSCC"),
        "saved compressed (Godot's compressed-file magic), got {:?}",
        &bytes[..4.min(bytes.len())]
    );
    check!(
        !std::path::Path::new(&file::temp_path(&path)).exists(),
        "the temporary file was renamed away"
    );
    let loaded = file::load(&path).map_err(|e| e.to_string())?;
    let snap = loaded.bind();
    let back = snap.to_core();
    check!(back == saved, "every field and checksum comes back");
    let entities = back.entities().map_err(|e| e.to_string())?;
    check!(
        entities == far_entities(500),
        "positions, velocities, accelerations and payloads equal to the last bit"
    );
    check!(snap.get_entity_count() == 500, "500 entities");
    check!(back.fabric_name == "test-fabric", "fabric name");
    check!(
        back.zone_count == 3 && back.tick == 1234 && back.created_unix_time == 1_790_000_000,
        "metadata"
    );
    check!(back.format_version == SNAPSHOT_FORMAT_VERSION, "version");
    // The GDScript convenience: metres as real_t. A double-precision build keeps the
    // micrometre at 10^7 m; a single-precision one keeps f32's 24 bits (the stored data stays
    // exact either way, as checked above).
    let double = std::mem::size_of::<real>() == 8;
    for i in [0usize, 1, 499] {
        let got = snap.get_position(i as i64);
        let want = entities[i].position.map(|m| m.to_num::<f64>() / 1e6);
        for (axis, (g, w)) in [got.x, got.y, got.z].into_iter().zip(want).enumerate() {
            let tolerance = if double { 1e-6 } else { w.abs() * 1e-7 + 1e-6 };
            let err = (f64::from(g) - w).abs();
            let within = err <= tolerance;
            check!(
                within,
                "get_position({i}) axis {axis}: {g} vs {w} m (error {err} m, double = {double})"
            );
        }
    }
    check!(
        snap.get_position(500) == Vector3::ZERO
            && snap.get_position(-1) == Vector3::ZERO
            && snap.get_position(i64::MAX) == Vector3::ZERO,
        "no such entity gives ZERO"
    );
    Ok(())
}

fn truncated_file_is_refused() -> Result<(), String> {
    let dir = TempDir::new("truncated")?;
    let path = dir.file("world.res");
    save_sample(200, &path)?;
    let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
    for keep in [bytes.len() / 2, 20, 0] {
        std::fs::write(&path, &bytes[..keep]).map_err(|e| e.to_string())?;
        let e = load_fails(&path)?;
        check!(
            matches!(e.problem, FileProblem::Unreadable | FileProblem::Invalid(_)),
            "truncated to {keep} of {} bytes: {e}",
            bytes.len()
        );
    }
    Ok(())
}

fn corrupted_file_is_refused() -> Result<(), String> {
    let dir = TempDir::new("corrupted")?;
    let path = dir.file("world.res");
    save_sample(200, &path)?;
    let good = std::fs::read(&path).map_err(|e| e.to_string())?;
    // Flip bytes in the compressed body, at several places.
    for at in [good.len() / 3, good.len() / 2, good.len() - 40] {
        let mut bad = good.clone();
        for b in &mut bad[at..at + 8] {
            *b ^= 0xA5;
        }
        std::fs::write(&path, &bad).map_err(|e| e.to_string())?;
        let e = load_fails(&path)?;
        check!(
            matches!(e.problem, FileProblem::Unreadable | FileProblem::Invalid(_)),
            "bytes flipped at {at}: {e}"
        );
    }
    Ok(())
}

fn changed_values_fail_the_checksum() -> Result<(), String> {
    // An uncompressed file shows the values as they are, so one can be changed in place: the
    // file still loads as a FabricSnapshot, and the checksum is what catches it.
    let dir = TempDir::new("checksum")?;
    let path = dir.file("world.res");
    let s = sample(50);
    let res = FabricSnapshot::from_core(&s); // sealed by from_entities
    let error = ResourceSaver::singleton()
        .save_ex(&res)
        .path(&path)
        .flags(SaverFlags::NONE)
        .done();
    check!(error == Error::OK, "uncompressed save: {error:?}");
    let mut bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
    let needle = s.positions[6 * 17].to_le_bytes();
    let at = bytes
        .windows(8)
        .position(|w| w == needle)
        .ok_or("entity 17's x position not found in the file")?;
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).map_err(|e| e.to_string())?;
    let e = load_fails(&path)?;
    check!(
        matches!(
            e.problem,
            FileProblem::Invalid(SnapshotError::ChecksumMismatch { .. })
        ),
        "a changed position fails the checksum: {e}"
    );
    check!(
        e.to_string().contains("corrupt"),
        "the message says it is corrupt: {e}"
    );
    Ok(())
}

fn wrong_version_is_refused() -> Result<(), String> {
    let dir = TempDir::new("version")?;
    let path = dir.file("future.res");
    let mut s = sample(10);
    s.format_version = 99;
    s.seal();
    let res = FabricSnapshot::from_core(&s);
    let error = ResourceSaver::singleton()
        .save_ex(&res)
        .path(&path)
        .flags(SaverFlags::COMPRESS)
        .done();
    check!(
        error == Error::OK,
        "saving a version-99 file directly: {error:?}"
    );
    let e = load_fails(&path)?;
    check!(
        e.problem
            == FileProblem::Invalid(SnapshotError::UnsupportedVersion {
                found: 99,
                supported: SNAPSHOT_FORMAT_VERSION
            }),
        "version 99 is refused: {e}"
    );
    check!(
        e.to_string().contains("unsupported format version 99"),
        "message: {e}"
    );
    check!(
        res.bind().validate().to_string().contains("version 99"),
        "validate() says it too"
    );
    Ok(())
}

fn foreign_resources_are_refused() -> Result<(), String> {
    let dir = TempDir::new("foreign")?;
    let plain = dir.file("plain.res");
    let error = ResourceSaver::singleton()
        .save_ex(&Resource::new_gd())
        .path(&plain)
        .flags(SaverFlags::COMPRESS)
        .done();
    check!(error == Error::OK, "saving a plain Resource: {error:?}");
    let e = load_fails(&plain)?;
    check!(
        e.problem
            == FileProblem::Foreign {
                class: "Resource".into()
            },
        "a plain Resource: {e}"
    );
    let image_path = dir.file("image.res");
    let image = Image::create_empty(4, 4, false, Format::RGBA8).ok_or("an image")?;
    let error = ResourceSaver::singleton()
        .save_ex(&image)
        .path(&image_path)
        .done();
    check!(error == Error::OK, "saving an Image: {error:?}");
    let e = load_fails(&image_path)?;
    check!(
        e.problem
            == FileProblem::Foreign {
                class: "Image".into()
            },
        "an Image: {e}"
    );
    check!(
        e.to_string().contains("not a FabricSnapshot"),
        "message: {e}"
    );
    // Text that is no resource at all.
    let text = dir.file("notes.res");
    std::fs::write(&text, b"hello, this is not a resource").map_err(|e| e.to_string())?;
    let e = load_fails(&text)?;
    check!(
        e.problem == FileProblem::Unreadable,
        "a text file named .res: {e}"
    );
    Ok(())
}

fn missing_file_is_named() -> Result<(), String> {
    let dir = TempDir::new("missing")?;
    let path = dir.file("nothing-here.res");
    let e = load_fails(&path)?;
    check!(e.problem == FileProblem::Missing, "missing: {e}");
    check!(
        e.to_string() == format!("snapshot file `{path}`: no such file"),
        "message: {e}"
    );
    check!(e.code() == Error::ERR_FILE_NOT_FOUND, "error code");
    check!(
        FabricSnapshot::load_from(GString::from(&path)).is_none(),
        "load_from gives null"
    );
    Ok(())
}

fn failed_saves_leave_the_file_as_it_was() -> Result<(), String> {
    let dir = TempDir::new("failed_save")?;
    let path = dir.file("world.res");
    let good = save_sample(30, &path)?;
    let before = std::fs::read(&path).map_err(|e| e.to_string())?;

    // An invalid snapshot is refused before anything is written.
    let mut dup = sample(5);
    dup.ids[4] = dup.ids[1];
    let e = file::save(&dup, &path).expect_err("duplicate ids must not save");
    check!(
        matches!(
            e.problem,
            FileProblem::NotSaved(SnapshotError::DuplicateId { .. })
        ),
        "duplicate ids: {e}"
    );
    check!(
        e.to_string().contains(&path) && e.to_string().contains("appears twice"),
        "message: {e}"
    );
    let gd = FabricSnapshot::from_core(&dup);
    check!(
        gd.bind().save_to(GString::from(&path)) == Error::ERR_INVALID_DATA,
        "save_to returns ERR_INVALID_DATA"
    );

    // A write that fails half-way: the temporary file's place is taken by a folder.
    std::fs::create_dir_all(file::temp_path(&path)).map_err(|e| e.to_string())?;
    std::fs::write(
        PathBuf::from(file::temp_path(&path)).join("keep"),
        b"makes the folder non-empty",
    )
    .map_err(|e| e.to_string())?;
    let e = file::save(&sample(40), &path).expect_err("the write must fail");
    check!(
        matches!(e.problem, FileProblem::Write { .. }),
        "blocked temporary file: {e}"
    );

    // A name that is not .res.
    let e = file::save(&good, &dir.file("world.tres")).expect_err("only .res");
    check!(e.problem == FileProblem::NotRes, "not .res: {e}");

    let after = std::fs::read(&path).map_err(|e| e.to_string())?;
    check!(after == before, "the valid file is byte for byte unchanged");
    let back = file::load(&path).map_err(|e| e.to_string())?;
    check!(back.bind().to_core() == good, "and still loads as before");
    Ok(())
}
