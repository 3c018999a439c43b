//! Deterministic sample data for tests and benchmarks: bytes shaped like a Godot export
//! (incompressible runs like textures and audio between repetitive text like `.tscn` scenes),
//! and a "small change" between two versions (a patched run and an insertion).

/// `len` bytes that look like a game export: runs of incompressible bytes (textures, audio)
/// between runs of repetitive text (scenes, scripts). Same seed, same bytes.
pub fn export_like(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let run = 4096 + (next() % 60_000) as usize;
        if next() % 10 < 6 {
            for _ in 0..run / 8 {
                out.extend_from_slice(&next().to_le_bytes());
            }
        } else {
            let n = next() % 1000;
            while out.len() < len && run > 0 {
                let line = format!(
                    "[node name=\"Node{n}\" type=\"MeshInstance3D\" parent=\".\"]\nmesh = SubResource(\"{}\")\n",
                    next() % 50
                );
                out.extend_from_slice(line.as_bytes());
                if out.len() % 65_536 < line.len() {
                    break;
                }
            }
        }
    }
    out.truncate(len);
    out
}

/// A copy of `v1` with a few bytes changed near 3/8 of it and 1000 bytes inserted near 3/4.
pub fn small_change(v1: &[u8]) -> Vec<u8> {
    let mut v2 = v1.to_vec();
    let at = v2.len() * 3 / 8;
    for b in &mut v2[at..at + 100] {
        *b = b.wrapping_add(1);
    }
    let at = v2.len() * 3 / 4;
    v2.splice(at..at, std::iter::repeat_n(0x5a, 1000));
    v2
}
