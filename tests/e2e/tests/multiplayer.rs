//! Godot's own high-level multiplayer (SceneMultiplayer: `@rpc`, MultiplayerSpawner,
//! MultiplayerSynchronizer) over FabricMMOGTransportPeer, unchanged, with every peer a real
//! headless Godot process (`res://scenes/mp/mp_test.tscn`) on loopback.
//!
//! Each process checks what it saw and exits 0 only when its checks passed; these tests read
//! what they printed and check the values again across processes (ids, RPC values, spawns,
//! synchronized values, disconnects), so a scene that merely "ran" cannot pass.
//!
//! Every test runs twice, once per transport (`..._over_webtransport`, `..._over_websocket`):
//! the server serves both, each client is forced onto one (`--transport`) and logs the
//! transport it connected over and the states it went through, and the tests check those, so
//! a broken transport fails its own tests and cannot hide behind the other.
//! The tests run one at a time: the machine has two cores shared with other work.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fabric_e2e::mp::{self, Transport, id_list, num, tagged};
use fabric_harness::engine;
use fabric_harness::process::Proc;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn assert_gone(p: &Proc, what: &str) {
    assert!(
        !p.group_alive(),
        "{what} (pid {}) was left running",
        p.pid()
    );
}

/// Checks that a client's connect line (`MP_CLIENT_CONNECTED` or `MP_SESSION_ROUND`) shows
/// `transport`: the transport the peer reports, and states that never tried the other one.
fn assert_transport(f: &BTreeMap<&str, &str>, transport: Transport, who: &str) {
    assert_eq!(
        f.get("transport").copied(),
        Some(transport.name()),
        "{who} connected over {}: {f:?}",
        transport.name()
    );
    assert_eq!(
        f.get("states").copied(),
        Some(transport.connect_states()),
        "{who}: connection states over {} (1 = trying WebTransport, 2 = trying WebSocket, \
         3 = connected): {f:?}",
        transport.name()
    );
}

/// `(sent, got)` of the client's RPC line for `mode`, checked against the expected reply.
fn rpc_values(out: &str, mode: &str) -> (i64, i64) {
    let lines = tagged(out, "MP_CLIENT_RPC");
    let f = lines
        .iter()
        .find(|f| f.get("mode") == Some(&mode))
        .unwrap_or_else(|| panic!("no {mode} RPC round trip logged:\n{out}"));
    (num(f, "sent"), num(f, "got"))
}

#[test]
fn server_and_three_clients_use_rpcs_spawner_and_synchronizer_over_webtransport() {
    server_and_three_clients_use_rpcs_spawner_and_synchronizer(Transport::WebTransport);
}

#[test]
fn server_and_three_clients_use_rpcs_spawner_and_synchronizer_over_websocket() {
    server_and_three_clients_use_rpcs_spawner_and_synchronizer(Transport::WebSocket);
}

fn server_and_three_clients_use_rpcs_spawner_and_synchronizer(transport: Transport) {
    const CLIENTS: usize = 3;
    let _s = serial();
    let engine = engine::prepare(false).expect("engine and extension ready");
    let started = Instant::now();
    let mut server = mp::start_server(&engine, CLIENTS, 1, 40, 0.05).expect("server starts");
    let names: Vec<String> = (1..=CLIENTS).map(|i| format!("c{i}")).collect();
    let url = mp::url(&server);
    let mut clients: Vec<Proc> = names
        .iter()
        .map(|n| {
            mp::spawn_client(&engine, transport, &url, &server.cert_hash, n, 40)
                .expect("client starts")
        })
        .collect();
    let outs: Vec<String> = clients
        .iter_mut()
        .zip(&names)
        .map(|(p, n)| mp::expect_success(p, n, Duration::from_secs(60)).expect("client passes"))
        .collect();
    let server_out = mp::expect_success(&mut server.proc, "the server", Duration::from_secs(20))
        .expect("server");
    eprintln!(
        "1 server + {CLIENTS} clients over {} finished in {:.1} s",
        transport.name(),
        started.elapsed().as_secs_f64()
    );

    // Who is who: each client's own id, as it logged it.
    let mut id_of = BTreeMap::new();
    for (out, name) in outs.iter().zip(&names) {
        let f = tagged(out, "MP_CLIENT_CONNECTED");
        assert_eq!(f.len(), 1, "{name} connected once:\n{out}");
        assert_eq!(f[0].get("name"), Some(&name.as_str()), "{name}'s name");
        assert_transport(&f[0], transport, name);
        id_of.insert(name.clone(), num::<i64>(&f[0], "id"));
    }
    let all_ids: BTreeSet<i64> = id_of.values().copied().collect();
    assert_eq!(all_ids.len(), CLIENTS, "distinct peer ids: {id_of:?}");
    assert!(
        all_ids
            .iter()
            .all(|&id| (2..=i64::from(i32::MAX)).contains(&id)),
        "client ids are in 2..2^31-1: {all_ids:?}"
    );
    let name_of: BTreeMap<i64, &str> = id_of.iter().map(|(n, &i)| (i, n.as_str())).collect();

    for (out, name) in outs.iter().zip(&names) {
        let me = id_of[name];
        let others: BTreeSet<i64> = all_ids.iter().copied().filter(|&i| i != me).collect();
        // peer_connected(1) on the client, and every other client through the server relay.
        let seen: Vec<i64> = tagged(out, "MP_CLIENT_PEER_CONNECTED")
            .iter()
            .map(|f| num(f, "id"))
            .collect();
        assert!(seen.contains(&1), "{name} saw peer_connected(1):\n{out}");
        let seen_others: BTreeSet<i64> = seen.iter().copied().filter(|&i| i != 1).collect();
        assert_eq!(seen_others, others, "{name} saw the other clients connect");
        // RPC round trips, with values: reliable n -> 3n+7, unreliable n -> n ^ 0x2545F491.
        let (sent, got) = rpc_values(out, "reliable");
        assert_eq!(got, sent * 3 + 7, "{name}: reliable RPC answer");
        let (sent, got) = rpc_values(out, "unreliable");
        assert_eq!(got, sent ^ 0x2545_F491, "{name}: unreliable RPC answer");
        // Client-to-client RPCs relayed by the server: sender id and token must match.
        let greets = tagged(out, "MP_CLIENT_GREET");
        let from: BTreeSet<i64> = greets.iter().map(|f| num(f, "from")).collect();
        assert_eq!(from, others, "{name} was greeted by every other client");
        for g in &greets {
            let f: i64 = num(g, "from");
            assert_eq!(num::<i64>(g, "token"), f ^ me, "{name}: token from {f}");
            assert_eq!(g.get("name"), Some(&name_of[&f]), "{name}: name of {f}");
        }
        // The spawner made one node per player, on every client.
        let spawned = tagged(out, "MP_CLIENT_SPAWNED");
        assert_eq!(spawned.len(), 1, "{name} logged its spawned nodes:\n{out}");
        let spawned: BTreeSet<i64> = id_list(spawned[0]["ids"]).into_iter().collect();
        assert_eq!(spawned, all_ids, "{name} has a node for every player");
        // The synchronizer moved each player's counter and set its label.
        let syncs = tagged(out, "MP_CLIENT_SYNC");
        assert_eq!(
            syncs.len(),
            CLIENTS,
            "{name}: one sync line per player:\n{out}"
        );
        for s in &syncs {
            let id: i64 = num(s, "id");
            assert_eq!(s.get("label"), Some(&name_of[&id]), "{name}: label of {id}");
            assert!(
                num::<i64>(s, "changes") >= 3,
                "{name}: counter of {id} moved: {s:?}"
            );
            assert!(
                num::<i64>(s, "last") > num::<i64>(s, "first"),
                "{name}: counter of {id} went up: {s:?}"
            );
        }
        assert!(out.contains("MP_CLIENT_OK "), "{name} finished:\n{out}");
        let errors = mp::error_lines(out);
        assert!(errors.is_empty(), "{name} logged errors: {errors:#?}");
    }

    // The server saw every client connect and disconnect.
    let connected: BTreeSet<i64> = tagged(&server_out, "MP_SERVER_PEER_CONNECTED")
        .iter()
        .map(|f| num(f, "id"))
        .collect();
    let disconnected: BTreeSet<i64> = tagged(&server_out, "MP_SERVER_PEER_DISCONNECTED")
        .iter()
        .map(|f| num(f, "id"))
        .collect();
    assert_eq!(connected, all_ids, "the server saw every client connect");
    assert_eq!(disconnected, all_ids, "the server saw every client leave");
    let registered: BTreeMap<i64, &str> = tagged(&server_out, "MP_SERVER_REGISTER")
        .iter()
        .map(|f| (num(f, "id"), f["name"]))
        .collect();
    assert_eq!(registered, name_of, "names registered by reliable RPC");
    let errors = mp::error_lines(&server_out);
    assert!(errors.is_empty(), "the server logged errors: {errors:#?}");

    assert_gone(&server.proc, "the server");
    for (p, n) in clients.iter().zip(&names) {
        assert_gone(p, n);
    }
}

/// A failed connection attempt that the client retried (see `MP_CLIENT_RETRY`): a handshake
/// timeout, or a session that could not be opened (`NetError::Connect`, either transport).
fn is_retried_connect_error(line: &str) -> bool {
    line.starts_with("ERROR: FabricMMOGTransportPeer: no answer from")
        || line.starts_with("ERROR: FabricMMOGTransportPeer: cannot open a session to")
}

#[test]
fn sixty_four_clients_connect_exchange_disconnect_and_reconnect_without_leaks_over_webtransport() {
    sixty_four_clients_connect_exchange_disconnect_and_reconnect_without_leaks(
        Transport::WebTransport,
    );
}

#[test]
fn sixty_four_clients_connect_exchange_disconnect_and_reconnect_without_leaks_over_websocket() {
    sixty_four_clients_connect_exchange_disconnect_and_reconnect_without_leaks(
        Transport::WebSocket,
    );
}

/// 64 clients in 4 processes over `transport`, 3 rounds.
fn sixty_four_clients_connect_exchange_disconnect_and_reconnect_without_leaks(
    transport: Transport,
) {
    const SWARMS: usize = 4;
    const PER_SWARM: usize = 16;
    const CLIENTS: usize = SWARMS * PER_SWARM;
    const ROUNDS: usize = 3;
    // Server RSS may grow this much from the end of round 1 to the end of the last round.
    // Round 1 pays the one-time costs (allocator arenas of the network threads, Godot's
    // caches); after it, 2 x 64 = 128 more sessions come and go. 8 MiB over 128 sessions is
    // 64 KiB per session, about what one QUIC connection's state and buffers take, so leaking
    // the sessions fails it, while allocator noise does not; measured: about 1 MiB or less
    // over either transport.
    const RSS_GROWTH_LIMIT_KIB: u64 = 8 * 1024;
    let _s = serial();
    let engine = engine::prepare(false).expect("engine and extension ready");
    let started = Instant::now();
    let mut server = mp::start_server(&engine, CLIENTS, ROUNDS, 60, 0.25).expect("server starts");
    let mut swarms: Vec<Proc> = (0..SWARMS)
        .map(|i| {
            mp::spawn_swarm(
                &engine,
                transport,
                &server,
                &format!("s{i}"),
                PER_SWARM,
                ROUNDS,
                60,
            )
            .expect("swarm starts")
        })
        .collect();

    // Between rounds (every client disconnected, none reconnected yet): the server's RSS.
    let mut rss_kib = Vec::new();
    for r in 1..=ROUNDS {
        let tag = format!("MP_ROUND_DONE round={r} ");
        server
            .proc
            .wait_for_line(|l| l.starts_with(&tag), Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("round {r} did not end: {e:#}"));
        let kib = mp::rss_kib(server.proc.pid()).expect("server VmRSS");
        eprintln!(
            "round {r} done after {:.1} s: server VmRSS {kib} KiB",
            started.elapsed().as_secs_f64()
        );
        rss_kib.push(kib);
    }
    let server_out = mp::expect_success(&mut server.proc, "the server", Duration::from_secs(30))
        .expect("server");
    let swarm_outs: Vec<String> = swarms
        .iter_mut()
        .enumerate()
        .map(|(i, p)| {
            mp::expect_success(p, &format!("swarm s{i}"), Duration::from_secs(30)).expect("swarm")
        })
        .collect();
    eprintln!(
        "{CLIENTS} clients x {ROUNDS} rounds over {} finished in {:.1} s",
        transport.name(),
        started.elapsed().as_secs_f64()
    );

    // Every round: all 64 connected at once and every report arrived.
    let oks = tagged(&server_out, "MP_ROUND_OK");
    assert_eq!(
        oks.len(),
        ROUNDS,
        "one MP_ROUND_OK per round:\n{server_out}"
    );
    for (r, f) in oks.iter().enumerate() {
        assert_eq!(num::<usize>(f, "round"), r + 1, "round order");
        assert_eq!(
            num::<usize>(f, "reports"),
            CLIENTS,
            "round {}: reports",
            r + 1
        );
        assert_eq!(
            num::<usize>(f, "peers"),
            CLIENTS,
            "round {}: peers at once",
            r + 1
        );
    }

    // Every round, every session: its own view of the exchange.
    let sessions: Vec<BTreeMap<&str, &str>> = swarm_outs
        .iter()
        .flat_map(|o| tagged(o, "MP_SESSION_ROUND"))
        .collect();
    let mut client_ids = BTreeSet::new();
    for r in 1..=ROUNDS {
        let this: Vec<_> = sessions
            .iter()
            .filter(|f| num::<usize>(f, "round") == r)
            .collect();
        let names: BTreeSet<&str> = this.iter().map(|f| f["name"]).collect();
        assert_eq!(
            names.len(),
            CLIENTS,
            "round {r}: every session reported once"
        );
        assert_eq!(this.len(), CLIENTS, "round {r}: no session reported twice");
        for f in &this {
            assert_transport(f, transport, &format!("round {r}: {}", f["name"]));
            assert_eq!(num::<usize>(f, "peers"), CLIENTS - 1, "round {r}: {f:?}");
            assert_eq!(
                num::<usize>(f, "greets"),
                num::<usize>(f, "greets_expected"),
                "round {r}: relayed greetings {f:?}"
            );
            assert_eq!(num::<usize>(f, "spawned"), CLIENTS, "round {r}: {f:?}");
            assert_eq!(num::<usize>(f, "synced"), CLIENTS, "round {r}: {f:?}");
            assert!(num::<i64>(f, "reliable") > 0, "round {r}: {f:?}");
            assert!(num::<i64>(f, "unreliable") > 0, "round {r}: {f:?}");
            assert!(
                client_ids.insert(num::<i64>(f, "id")),
                "peer ids are fresh on every connect: {f:?}"
            );
        }
    }
    for reuse in ["true", "false"] {
        assert!(
            sessions.iter().any(|f| f.get("reuse") == Some(&reuse)),
            "sessions with reuse={reuse}: reconnecting with the same peer object after close() \
             and with a new one are both covered"
        );
    }
    let greets: usize = sessions.iter().map(|f| num::<usize>(f, "greets")).sum();
    assert!(greets > 0, "some client-to-client RPCs were relayed");

    // The server saw each of those sessions connect and leave.
    let ids = |tag| -> BTreeSet<i64> {
        tagged(&server_out, tag)
            .iter()
            .map(|f| num(f, "id"))
            .collect()
    };
    assert_eq!(
        ids("MP_SERVER_PEER_CONNECTED"),
        client_ids,
        "server connects"
    );
    assert_eq!(
        ids("MP_SERVER_PEER_DISCONNECTED"),
        client_ids,
        "server disconnects"
    );

    // No leaks: between rounds the server is back to the same objects and nodes, its Godot
    // memory and RSS stay flat; each swarm process is back to the same objects.
    let done = tagged(&server_out, "MP_ROUND_DONE");
    assert_eq!(done.len(), ROUNDS, "one MP_ROUND_DONE per round");
    for f in &done {
        assert_eq!(num::<usize>(f, "players_left"), 0, "players freed: {f:?}");
        assert_eq!(num::<usize>(f, "peers_left"), 0, "peers gone: {f:?}");
        for key in ["objects", "nodes"] {
            assert_eq!(
                num::<u64>(f, key),
                num::<u64>(&done[0], key),
                "server {key} between rounds: {done:?}"
            );
        }
    }
    let static_growth =
        num::<i64>(&done[ROUNDS - 1], "static_mem") - num::<i64>(&done[0], "static_mem");
    assert!(
        static_growth < 1 << 20,
        "server Godot memory grew {static_growth} bytes after round 1: {done:?}"
    );
    let rss_growth = rss_kib[ROUNDS - 1].saturating_sub(rss_kib[0]);
    assert!(
        rss_growth < RSS_GROWTH_LIMIT_KIB,
        "server RSS grew {rss_growth} KiB after round 1 (limit {RSS_GROWTH_LIMIT_KIB}): {rss_kib:?}"
    );
    for (i, out) in swarm_outs.iter().enumerate() {
        let idle = tagged(out, "MP_SWARM_IDLE");
        assert!(
            idle.len() >= ROUNDS - 1,
            "swarm s{i} counted its objects between rounds:\n{out}"
        );
        for f in &idle {
            assert_eq!(
                num::<u64>(f, "objects"),
                num::<u64>(&idle[0], "objects"),
                "swarm s{i} objects between rounds: {idle:?}"
            );
        }
    }

    // No errors, except the failed handshakes that the clients retried and said so.
    let retries: usize = swarm_outs
        .iter()
        .map(|o| tagged(o, "MP_CLIENT_RETRY").len())
        .sum();
    let mut retried_errors = 0;
    for (i, out) in swarm_outs.iter().chain([&server_out]).enumerate() {
        let errors: Vec<&str> = mp::error_lines(out)
            .into_iter()
            .filter(|l| {
                let retried = is_retried_connect_error(l);
                retried_errors += usize::from(retried);
                !retried
            })
            .collect();
        assert!(errors.is_empty(), "process {i} logged errors: {errors:#?}");
    }
    assert_eq!(retried_errors, retries, "each connect error was retried");
    eprintln!(
        "server VmRSS between rounds (KiB): {rss_kib:?}; connect retries: {retries}; \
         relayed greetings: {greets}"
    );

    assert_gone(&server.proc, "the server");
    for (i, p) in swarms.iter().enumerate() {
        assert_gone(p, &format!("swarm s{i}"));
    }
}

#[test]
fn client_with_a_wrong_certificate_hash_exits_non_zero_with_a_clear_message_over_webtransport() {
    client_with_a_wrong_certificate_hash_exits_non_zero_with_a_clear_message(
        Transport::WebTransport,
    );
}

#[test]
fn client_with_a_wrong_certificate_hash_exits_non_zero_with_a_clear_message_over_websocket() {
    client_with_a_wrong_certificate_hash_exits_non_zero_with_a_clear_message(Transport::WebSocket);
}

fn client_with_a_wrong_certificate_hash_exits_non_zero_with_a_clear_message(transport: Transport) {
    let _s = serial();
    let engine = engine::prepare(false).expect("engine and extension ready");
    let started = Instant::now();
    let mut server = mp::start_server(&engine, 1, 1, 20, 0.05).expect("server starts");
    // A well-formed hash, but not the server's.
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let mut client = mp::spawn_client(&engine, transport, &mp::url(&server), wrong, "c1", 20)
        .expect("client starts");
    let outcome = client.wait(Duration::from_secs(40));
    let out = client.output();
    assert_eq!(outcome.code, Some(1), "exit code 1: {outcome:?}\n{out}");
    let fail = out
        .lines()
        .find(|l| l.starts_with("MP_FAIL client c1: connection failed (no retries left)"))
        .unwrap_or_else(|| panic!("a clear failure line:\n{out}"));
    assert!(
        fail.contains("does not match the pinned hash"),
        "the reason names the certificate: {fail}"
    );
    // The URL of the transport asked for: the WebSocket client derived wss:// from https://.
    let tried = match transport {
        Transport::WebTransport => format!("https://127.0.0.1:{}/wt", server.port),
        Transport::WebSocket => format!("wss://127.0.0.1:{}/ws", server.port),
    };
    assert!(
        fail.contains(&format!("TLS handshake with {tried} failed")),
        "the reason names the {} URL {tried}: {fail}",
        transport.name()
    );
    assert_eq!(
        tagged(&out, "MP_CLIENT_RETRY").len(),
        3,
        "three retries, then it gives up:\n{out}"
    );
    let server_out = server.proc.output();
    assert!(
        !server_out.contains("MP_SERVER_PEER_CONNECTED"),
        "no peer joined the server:\n{server_out}"
    );
    server.proc.stop();
    assert_gone(&client, "the client");
    assert_gone(&server.proc, "the server");
    eprintln!(
        "wrong certificate hash over {}: refused in {:.1} s",
        transport.name(),
        started.elapsed().as_secs_f64()
    );
}
