//! The original fabric's replication as the benchmark's baseline (issue 11): a real zone
//! process with 300 wanderers serving `original_scheme` to at most one session
//! (`--original-scheme-sessions 1`), and two observers (`fabric_load::original`, the load
//! generator's own) joined over real WebTransport sessions. The first is served every entity
//! of the zone as a 100-byte row every tick: the zone's 300 entities each second, 20 rows a
//! second each, every datagram a valid row batch; the second is refused with a clear reason.

use std::sync::Arc;
use std::time::Duration;

use fabric_e2e::linked_zones::Fabric;
use fabric_e2e::zone_probe::metrics;
use fabric_load::original::observe;
use fabric_load::target::{Target, Transport, ZoneAddr};

#[test]
fn a_zone_serves_the_original_scheme_to_the_sessions_it_allows_and_refuses_the_others() {
    let mut f = Fabric::start(
        "e2e-original-scheme",
        1,
        &[
            "--population",
            "wanderers",
            "--entities",
            "300",
            "--seed",
            "3",
            "--original-scheme-sessions",
            "1",
        ],
    )
    .expect("a zone process");
    let z = &f.zones[0];
    let zone = ZoneAddr::parse(&format!("127.0.0.1:{},{}", z.port, z.hash)).unwrap();
    let target = Arc::new(Target::new(vec![zone], 15.0, None, Transport::WebTransport).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (served, refused) = rt.block_on(async {
        let now = tokio::time::Instant::now();
        let served = tokio::spawn(observe(
            0,
            0,
            target.clone(),
            now + Duration::from_secs(1),
            now + Duration::from_secs(5),
        ));
        // The second asks once the first is served.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let refused = observe(1, 0, target.clone(), now, now + Duration::from_secs(5)).await;
        (served.await.unwrap(), refused)
    });
    let owned = metrics(z.metrics).unwrap()["fabric_zone_owned"];
    println!("served: {served:?}\nrefused: {refused:?}\nzone owns {owned}");
    assert_eq!(served.error, None, "the first observer is served");
    assert_eq!(owned, 300.0, "the zone holds its 300 wanderers");
    assert_eq!(
        served.entities, 300,
        "every entity of the zone, each second"
    );
    assert_eq!(served.bad, 0, "every datagram a valid row batch");
    // 20 rows a second for each of 300 entities (a frame late now and then: within 5 %).
    assert!(
        (served.rows_per_s - 6000.0).abs() < 300.0,
        "rows per second: {}",
        served.rows_per_s
    );
    // 100 bytes a row, a 4-byte header per batch of at most 11 rows.
    let per_row = served.bytes_per_s / served.rows_per_s;
    assert!(
        (100.3..=104.0).contains(&per_row),
        "bytes per row: {per_row}"
    );
    let why = refused.error.expect("the second observer is refused");
    assert!(why.contains("original_scheme_refused"), "{why}");
    f.stop();
}
