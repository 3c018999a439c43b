//! The screenshot test (issue 11, part 6): the demo's fabric (3 linked zone processes with
//! wanderers, the gateway) and the visual client (`res://examples/fabric_world/visual.tscn`)
//! run windowed under Xvfb with Mesa's software OpenGL (`scripts/setup-xvfb.sh` installs both
//! on the first run). The client saves what its window shows once entities of all three zones
//! have been drawn for 30 frames; the test decodes the PNG and counts, outside the legend, the
//! pixels of each zone's colour: each zone must show at least [`MIN_PIXELS`] of them, and the
//! client's own count of visible entities per zone must name all three; no entity may be drawn
//! without its zone's colour (a black box).
//!
//! `FABRIC_UPDATE_SCREENSHOT=1` also copies the picture to `docs/img/fabric.png` (the README's).

use std::time::Duration;

use fabric_e2e::demo_fabric::{DemoFabric, DemoOptions};
use fabric_e2e::screenshot::Picture;
use fabric_e2e::xvfb::Xvfb;
use fabric_e2e::zone_probe::field;
use fabric_harness::engine;
use fabric_harness::paths;
use fabric_harness::process::Proc;

/// The zone colours of `visual.gd` (`ZONE_COLOURS`), zones 0, 1, 2.
const ZONE_COLOURS: [[u8; 3]; 3] = [[235, 64, 52], [52, 199, 89], [40, 120, 245]];
/// How far a drawn pixel may be from its colour on any channel (sRGB rounding, edges).
const TOLERANCE: u8 = 6;
/// Fewest pixels of each zone's colour: an entity's box is about 13 x 13 pixels; three of them.
const MIN_PIXELS: usize = 3 * 100;

fn rect(text: &str) -> (u32, u32, u32, u32) {
    let v: Vec<u32> = text.split(',').map(|n| n.parse().unwrap()).collect();
    (v[0], v[1], v[2], v[3])
}

#[test]
fn the_visual_client_draws_entities_of_three_zones_in_their_colours() {
    let eng = engine::prepare(false).expect("engine");
    let xvfb = Xvfb::start(1280, 720).expect("Xvfb and Mesa (scripts/setup-xvfb.sh)");
    let mut fabric = DemoFabric::start("visual", DemoOptions::default()).expect("fabric");
    let shot = paths::scratch_dir("visual-client").join("fabric.png");
    let _ = std::fs::remove_file(&shot);
    let path = shot.display().to_string();
    let mut cmd = fabric
        .visual_command(&eng, &["--screenshot", &path, "--quit-after", "90"])
        .expect("visual client command");
    xvfb.apply(&mut cmd);
    let mut client = Proc::spawn("visual", cmd, true).expect("visual client starts");
    let line = client
        .wait_for_line(
            |l| l.starts_with("FABRIC_VISUAL_SHOT"),
            Duration::from_secs(120),
        )
        .expect("a screenshot with entities of three zones");
    let outcome = client.wait(Duration::from_secs(20));
    fabric.stop();
    println!("VISUAL_E2E {line}");
    assert!(outcome.success(), "visual client: {outcome:?}");

    let zones = field(&line, "zones").expect("zones");
    let counted: Vec<u8> = zones
        .split(',')
        .map(|z| z.split(':').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(counted, [0, 1, 2], "zones the client drew: {zones}");

    let picture = Picture::load(&shot).expect("the screenshot decodes");
    assert_eq!((picture.width, picture.height), (1280, 720));
    let legend = rect(field(&line, "legend").expect("legend"));
    let pixels: Vec<usize> = ZONE_COLOURS
        .iter()
        .map(|c| picture.count(*c, TOLERANCE, legend))
        .collect();
    println!("VISUAL_E2E pixels of zones 0, 1, 2 outside the legend: {pixels:?}");
    for (k, n) in pixels.iter().enumerate() {
        assert!(
            *n >= MIN_PIXELS,
            "zone {k}: {n} pixels of its colour (at least {MIN_PIXELS})"
        );
    }
    // A drawn entity without its zone's material is a black box (unlit): none may show.
    let uncoloured = picture.count([0, 0, 0], 16, legend);
    assert!(
        uncoloured < 100,
        "{uncoloured} black pixels: entities drawn without their zone's colour"
    );
    if std::env::var_os("FABRIC_UPDATE_SCREENSHOT").is_some() {
        let dst = paths::repo_root().join("docs/img/fabric.png");
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&shot, &dst).unwrap();
    }
}
