//! Follow tickets (`fabric_auth::follow_ticket`): any text a `claim` carries verifies or gets a
//! typed error (never a panic), against a verifier that knows the seeds' signing key. The rest of
//! the input drives `arbitrary` tickets through sign then verify: a ticket with an account within
//! the limit comes back equal while unexpired, and a replay guard takes its nonce once.
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use ed25519_dalek::SigningKey;
use fabric_auth::follow_ticket::{
    FollowTicket, FollowTicketSigner, FollowTicketVerifier, MAX_ACCOUNT_LEN, ReplayGuard,
};
use libfuzzer_sys::fuzz_target;

/// The signing key of the seed tickets (`fuzz/seeds/follow_ticket/`).
pub const SEED_KEY: [u8; 32] = [9; 32];
/// The fabric of the seed tickets.
const FABRIC: &str = "fuzz";
/// The zone the seed tickets are for.
const ZONE: u8 = 1;
/// The verifier's clock (inside the seed tickets' validity).
const NOW: u64 = 1_800_000_000;

fn parties() -> &'static (FollowTicketSigner, FollowTicketVerifier) {
    static P: OnceLock<(FollowTicketSigner, FollowTicketVerifier)> = OnceLock::new();
    P.get_or_init(|| {
        let signer = FollowTicketSigner::new(FABRIC, SigningKey::from_bytes(&SEED_KEY));
        let verifier = signer.verifier(ZONE);
        (signer, verifier)
    })
}

#[derive(Debug, Arbitrary)]
struct Ticket {
    from: u8,
    to: u8,
    avatar: u32,
    account: String,
    exp: u64,
    nonce: u64,
    place: bool,
}

fuzz_target!(|data: &[u8]| {
    let (signer, verifier) = parties();
    let text = String::from_utf8_lossy(data);
    if let Ok(t) = verifier.verify(&text, 7, "", NOW) {
        assert_eq!(t.to, ZONE, "a verified ticket names the verifier's zone");
        assert!(t.exp > NOW, "a verified ticket has not expired");
    }

    let Ok(a) = Ticket::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let t = FollowTicket {
        from: a.from,
        to: a.to,
        avatar: a.avatar,
        account: a.account,
        exp: a.exp,
        nonce: a.nonce,
        place: a.place,
    };
    let Ok(text) = signer.sign(&t) else {
        assert!(t.account.len() > MAX_ACCOUNT_LEN, "refused to sign {t:?}");
        return;
    };
    let to_here = FollowTicketVerifier::new(
        FABRIC,
        t.to,
        [SigningKey::from_bytes(&SEED_KEY).verifying_key()],
    );
    match to_here.verify(&text, t.avatar, &t.account, NOW) {
        Ok(back) => {
            assert_eq!(back, t, "verify(sign(t)) == t");
            let mut guard = ReplayGuard::new(4);
            assert!(guard.take(&back, NOW).is_ok(), "a fresh ticket is taken");
            assert!(guard.take(&back, NOW).is_err(), "and only once");
        }
        Err(e) => assert!(t.exp <= NOW, "refused an unexpired ticket {t:?}: {e}"),
    }
});
