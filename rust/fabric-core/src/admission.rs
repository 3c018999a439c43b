//! Admission of sessions into a zone: the welcome hand-shake and join-token checks (sans-IO).
//!
//! The zone node feeds session openings, control messages and the passing of time in; the
//! [`Action`]s that come out say what to send and whom to close. Time is an argument
//! (milliseconds on any monotonic clock), so the behaviour is deterministic and testable
//! without sockets.
//!
//! - Without tokens, a session is admitted when it opens and is greeted at once.
//! - With tokens (a zone that registered with the registry), a session is admitted by its first
//!   `hello` carrying a valid join token for this zone; a `hello` without one, or with a refused
//!   one, closes the session with [`close_code::FORBIDDEN`] and the reason; a session that shows
//!   no valid token within [`AdmissionConfig::token_deadline_ms`] is closed the same way.
//! - One live session per join token: a token checked with a token id
//!   ([`TokenVerdict::AdmitOnce`]) admits its session and closes an older session that the same
//!   token admitted ([`close_code::FORBIDDEN`], "replaced by a newer session"), so a copied
//!   token cannot add a second player, and a client that reconnects before the zone noticed its
//!   old session died is not locked out.
//! - Whether the session may place assets (CMD_INSTANCE_ASSET, [`Admission::may_place`]) is
//!   decided on admission: a session admitted without tokens may (development and static
//!   set-ups: any admitted player places); one admitted by a join token may when the token's
//!   `place` claim says so ([`TokenVerdict::AdmitOnce::place`]); one admitted by a follow
//!   ticket carries the permission the ticket states (the zone it came from decided it).
//! - The welcome is robust against datagram loss: sent on admission, answered again on every
//!   `hello`, and resent every [`AdmissionConfig::resend_ms`] until the client's `welcome_ack`.

use std::collections::BTreeMap;

use crate::session_control::{ControlMessage, close_code};

/// Admission settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// The zone's id, carried in the welcome.
    pub zone_id: u32,
    /// Sessions need a valid join token.
    pub require_token: bool,
    /// Milliseconds between welcome resends.
    pub resend_ms: u64,
    /// Most welcome sends per session.
    pub max_welcome_sends: u32,
    /// Milliseconds a session may stay without a valid token.
    pub token_deadline_ms: u64,
}

impl AdmissionConfig {
    /// Defaults: no tokens, resend every 200 ms up to 50 times, 10 s token deadline.
    pub fn new(zone_id: u32) -> Self {
        Self {
            zone_id,
            require_token: false,
            resend_ms: 200,
            max_welcome_sends: 50,
            token_deadline_ms: 10_000,
        }
    }
}

/// What a token check says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenVerdict {
    /// Valid for this zone; the subject (account) it was issued to. The session may not place
    /// assets.
    Admit(String),
    /// Valid for this zone, and the token's id (`jti`): at most one live session per id.
    AdmitOnce {
        /// The account the token was issued to.
        subject: String,
        /// The token's unique id.
        token_id: String,
        /// The token's `place` claim: the account may place assets here.
        place: bool,
    },
    /// Not valid: why, in words (with the stable code first).
    Refuse(String),
    /// The zone cannot check yet (not registered): the client's resent `hello` will be checked later.
    NotReady,
}

/// Something the zone must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `bytes` to `session` (on the reliable stream when `reliable`, else as a datagram).
    Send {
        /// The session.
        session: u64,
        /// The encoded control message.
        bytes: Vec<u8>,
        /// Use the reliable path.
        reliable: bool,
    },
    /// Close `session` with `code` and `reason`.
    Close {
        /// The session.
        session: u64,
        /// Application close code.
        code: u32,
        /// Reason the client will read.
        reason: String,
    },
    /// `session` was admitted (with the token's subject when tokens are required).
    Admitted {
        /// The session.
        session: u64,
        /// The account the token named.
        subject: Option<String>,
    },
    /// `session` acknowledged its welcome.
    Acknowledged {
        /// The session.
        session: u64,
    },
}

#[derive(Debug, Clone)]
struct Session {
    opened_ms: u64,
    admitted: bool,
    subject: Option<String>,
    token_id: Option<String>,
    may_place: bool,
    pending_join: Option<u32>,
    welcome_sends: u32,
    last_send_ms: u64,
    acked: bool,
}

/// The admission state of every open session.
#[derive(Debug, Clone)]
pub struct Admission {
    cfg: AdmissionConfig,
    sessions: BTreeMap<u64, Session>,
    /// The session each token id admitted, while it is open.
    token_sessions: BTreeMap<String, u64>,
}

impl Admission {
    /// No sessions yet.
    pub fn new(cfg: AdmissionConfig) -> Self {
        Self {
            cfg,
            sessions: BTreeMap::new(),
            token_sessions: BTreeMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &AdmissionConfig {
        &self.cfg
    }

    /// Changes whether tokens are required (for sessions that open afterwards).
    pub fn set_require_token(&mut self, on: bool) {
        self.cfg.require_token = on;
    }

    fn welcome(&self, session: u64, tick: u64) -> Vec<u8> {
        ControlMessage::Welcome {
            zone_id: self.cfg.zone_id,
            tick,
            session,
        }
        .encode()
    }

    #[allow(clippy::too_many_arguments)]
    fn admit(
        &mut self,
        session: u64,
        subject: Option<String>,
        may_place: bool,
        now_ms: u64,
        tick: u64,
        out: &mut Vec<Action>,
    ) {
        let bytes = self.welcome(session, tick);
        let mut pending_join = None;
        if let Some(s) = self.sessions.get_mut(&session) {
            s.admitted = true;
            s.may_place = may_place;
            s.subject.clone_from(&subject);
            s.welcome_sends = 1;
            s.last_send_ms = now_ms;
            pending_join = s.pending_join.take();
        }
        out.push(Action::Admitted { session, subject });
        if let Some(peer_id) = pending_join {
            // The peer asked to join before it showed its token: answer now.
            out.push(Action::Send {
                session,
                bytes: ControlMessage::Joined { peer_id }.encode(),
                reliable: true,
            });
        }
        out.push(Action::Send {
            session,
            bytes,
            reliable: false,
        });
    }

    /// A session opened.
    pub fn open(&mut self, session: u64, now_ms: u64, tick: u64, out: &mut Vec<Action>) {
        self.sessions.insert(
            session,
            Session {
                opened_ms: now_ms,
                admitted: false,
                subject: None,
                token_id: None,
                may_place: false,
                pending_join: None,
                welcome_sends: 0,
                last_send_ms: now_ms,
                acked: false,
            },
        );
        if !self.cfg.require_token {
            // No tokens: nobody's permission is known, every player may place.
            self.admit(session, None, true, now_ms, tick, out);
        }
    }

    /// A session closed.
    pub fn close(&mut self, session: u64) {
        if let Some(id) = self.sessions.remove(&session).and_then(|s| s.token_id)
            && self.token_sessions.get(&id) == Some(&session)
        {
            self.token_sessions.remove(&id);
        }
    }

    /// Binds `token_id` to `session`, closing the older session the same token admitted.
    fn bind_token(&mut self, session: u64, token_id: String, out: &mut Vec<Action>) {
        if let Some(older) = self.token_sessions.insert(token_id.clone(), session)
            && older != session
            && let Some(st) = self.sessions.get_mut(&older)
            && st.admitted
        {
            // Like a revocation: no longer counted, closed once.
            st.token_id = None;
            st.admitted = false;
            st.opened_ms = u64::MAX / 2;
            out.push(Action::Close {
                session: older,
                code: close_code::FORBIDDEN,
                reason: format!(
                    "replaced by a newer session (session {session}) with the same join token"
                ),
            });
        }
        if let Some(st) = self.sessions.get_mut(&session) {
            st.token_id = Some(token_id);
        }
    }

    /// A control message arrived on `session`; `check` verifies join tokens.
    #[allow(clippy::too_many_arguments)]
    pub fn control(
        &mut self,
        session: u64,
        msg: &ControlMessage,
        reliable: bool,
        now_ms: u64,
        tick: u64,
        check: &mut dyn FnMut(&str) -> TokenVerdict,
        out: &mut Vec<Action>,
    ) {
        let Some(state) = self.sessions.get(&session) else {
            return;
        };
        let admitted = state.admitted;
        match msg {
            ControlMessage::Hello { token, .. } if admitted => {
                let _ = token;
                out.push(Action::Send {
                    session,
                    bytes: self.welcome(session, tick),
                    reliable,
                });
            }
            ControlMessage::Hello { token: None, .. } => out.push(Action::Close {
                session,
                code: close_code::FORBIDDEN,
                reason: "join token required: get one from the registry (POST /tokens/join) and send it in hello".into(),
            }),
            ControlMessage::Hello { token: Some(t), .. } => match check(t) {
                TokenVerdict::Admit(subject) => {
                    self.admit(session, Some(subject), false, now_ms, tick, out)
                }
                TokenVerdict::AdmitOnce {
                    subject,
                    token_id,
                    place,
                } => {
                    self.bind_token(session, token_id, out);
                    self.admit(session, Some(subject), place, now_ms, tick, out);
                }
                TokenVerdict::Refuse(why) => out.push(Action::Close {
                    session,
                    code: close_code::FORBIDDEN,
                    reason: format!("join token refused: {why}"),
                }),
                TokenVerdict::NotReady => {}
            },
            ControlMessage::WelcomeAck { session: s } if *s == session => {
                if let Some(st) = self.sessions.get_mut(&session)
                    && st.admitted
                    && !st.acked
                {
                    st.acked = true;
                    out.push(Action::Acknowledged { session });
                }
            }
            ControlMessage::Ping { id } => out.push(Action::Send {
                session,
                bytes: ControlMessage::pong(id).encode(),
                reliable,
            }),
            ControlMessage::Join { peer_id } if admitted => out.push(Action::Send {
                session,
                bytes: ControlMessage::Joined { peer_id: *peer_id }.encode(),
                reliable: true,
            }),
            ControlMessage::Join { peer_id } => {
                if let Some(st) = self.sessions.get_mut(&session) {
                    st.pending_join = Some(*peer_id);
                }
            }
            _ => {}
        }
    }

    /// Time passed: resend unacknowledged welcomes, close sessions past the token deadline.
    pub fn poll(&mut self, now_ms: u64, tick: u64, out: &mut Vec<Action>) {
        let cfg = &self.cfg;
        let mut resend = Vec::new();
        for (&id, s) in self.sessions.iter_mut() {
            if s.admitted {
                if !s.acked
                    && s.welcome_sends < cfg.max_welcome_sends
                    && now_ms.saturating_sub(s.last_send_ms) >= cfg.resend_ms
                {
                    s.welcome_sends += 1;
                    s.last_send_ms = now_ms;
                    resend.push(id);
                }
            } else if cfg.require_token
                && now_ms.saturating_sub(s.opened_ms) >= cfg.token_deadline_ms
            {
                out.push(Action::Close {
                    session: id,
                    code: close_code::FORBIDDEN,
                    reason: format!(
                        "no valid join token within {} s",
                        cfg.token_deadline_ms as f64 / 1000.0
                    ),
                });
                // Report once: the session is closing.
                s.opened_ms = u64::MAX / 2;
            }
        }
        for id in resend {
            out.push(Action::Send {
                session: id,
                bytes: self.welcome(id, tick),
                reliable: false,
            });
        }
    }

    /// The distinct accounts of admitted sessions (the per-session decisions to re-derive when
    /// the registry reports a relationship change).
    pub fn admitted_subjects(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .sessions
            .values()
            .filter(|s| s.admitted)
            .filter_map(|s| s.subject.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// `subject` may no longer join: its sessions lose admission and are closed.
    pub fn revoke(&mut self, subject: &str, out: &mut Vec<Action>) {
        for (&id, s) in self.sessions.iter_mut() {
            if s.admitted && s.subject.as_deref() == Some(subject) {
                s.admitted = false;
                s.opened_ms = u64::MAX / 2;
                out.push(Action::Close {
                    session: id,
                    code: close_code::FORBIDDEN,
                    reason: format!("join permission revoked for {subject}"),
                });
            }
        }
    }

    /// Admitted sessions (the zone's player count).
    pub fn admitted_count(&self) -> usize {
        self.sessions.values().filter(|s| s.admitted).count()
    }

    /// The account `session` was admitted as (its join token's subject), if any.
    pub fn subject(&self, session: u64) -> Option<&str> {
        self.sessions
            .get(&session)
            .filter(|s| s.admitted)
            .and_then(|s| s.subject.as_deref())
    }

    /// True while `session` is admitted (it may ask for an avatar and send commands).
    pub fn is_admitted(&self, session: u64) -> bool {
        self.sessions.get(&session).is_some_and(|s| s.admitted)
    }

    /// True while `session` is admitted and may place assets (CMD_INSTANCE_ASSET): admitted
    /// without tokens, by a token whose `place` claim is true, or by a follow ticket saying so.
    pub fn may_place(&self, session: u64) -> bool {
        self.sessions
            .get(&session)
            .is_some_and(|s| s.admitted && s.may_place)
    }

    /// True once `session` acknowledged its welcome.
    pub fn is_acknowledged(&self, session: u64) -> bool {
        self.sessions.get(&session).is_some_and(|s| s.acked)
    }

    /// Admits `session` as `subject` on the strength of a follow ticket the zone checked
    /// (a player taking its avatar back here holds no join token of this zone): welcomed as
    /// after a token, allowed to place assets when `may_place` (what the ticket states).
    /// False when the session is unknown or already admitted.
    pub fn admit_by_ticket(
        &mut self,
        session: u64,
        subject: String,
        may_place: bool,
        now_ms: u64,
        tick: u64,
        out: &mut Vec<Action>,
    ) -> bool {
        if self.sessions.get(&session).is_none_or(|s| s.admitted) {
            return false;
        }
        let subject = (!subject.is_empty()).then_some(subject);
        self.admit(session, subject, may_place, now_ms, tick, out);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn welcomes(out: &[Action], session: u64) -> usize {
        out.iter()
            .filter(|a| matches!(a, Action::Send { session: s, bytes, .. }
                if *s == session && matches!(ControlMessage::decode(bytes), Ok(ControlMessage::Welcome { .. }))))
            .count()
    }

    fn never(_: &str) -> TokenVerdict {
        panic!("no token check expected")
    }

    #[test]
    fn open_zone_greets_at_once_and_resends_until_acked() {
        let mut a = Admission::new(AdmissionConfig::new(4));
        let mut out = Vec::new();
        a.open(1, 0, 10, &mut out);
        assert_eq!(welcomes(&out, 1), 1, "welcome pushed on open");
        assert!(out.contains(&Action::Admitted {
            session: 1,
            subject: None
        }));
        out.clear();
        a.poll(199, 11, &mut out);
        assert!(out.is_empty(), "no resend before 200 ms: {out:?}");
        a.poll(200, 12, &mut out);
        a.poll(400, 13, &mut out);
        assert_eq!(welcomes(&out, 1), 2, "resent every 200 ms");
        out.clear();
        let ack = ControlMessage::WelcomeAck { session: 1 };
        a.control(1, &ack, false, 410, 13, &mut never, &mut out);
        assert_eq!(out, vec![Action::Acknowledged { session: 1 }]);
        assert!(a.is_acknowledged(1));
        out.clear();
        a.poll(10_000, 99, &mut out);
        assert!(out.is_empty(), "no resend after the ack");
        // A hello is still answered (the client may have lost every welcome but not sent the ack).
        let hello = ControlMessage::Hello {
            id: "h".into(),
            token: None,
        };
        a.control(1, &hello, false, 10_001, 99, &mut never, &mut out);
        assert_eq!(welcomes(&out, 1), 1);
    }

    #[test]
    fn a_checked_follow_ticket_admits_a_session_of_a_token_zone_once() {
        let mut cfg = AdmissionConfig::new(2);
        cfg.require_token = true;
        let mut a = Admission::new(cfg);
        let mut out = Vec::new();
        a.open(7, 0, 0, &mut out);
        assert!(!a.is_admitted(7));
        assert!(a.admit_by_ticket(7, "ann".into(), true, 5, 3, &mut out));
        assert!(a.is_admitted(7));
        assert!(a.may_place(7), "the ticket said the player may place");
        assert_eq!(a.subject(7), Some("ann"));
        assert!(out.contains(&Action::Admitted {
            session: 7,
            subject: Some("ann".into())
        }));
        assert_eq!(welcomes(&out, 7), 1, "welcomed as after a token");
        out.clear();
        assert!(
            !a.admit_by_ticket(7, "bob".into(), false, 6, 3, &mut out),
            "already admitted"
        );
        assert!(
            !a.admit_by_ticket(8, "ann".into(), false, 6, 3, &mut out),
            "no such session"
        );
        assert!(out.is_empty());
        assert_eq!(a.subject(7), Some("ann"));
        a.poll(60_000, 9, &mut out);
        assert!(
            !out.iter()
                .any(|x| matches!(x, Action::Close { session: 7, .. })),
            "no token deadline once admitted: {out:?}"
        );
    }

    #[test]
    fn resends_stop_after_the_limit() {
        let mut a = Admission::new(AdmissionConfig::new(0));
        let mut out = Vec::new();
        a.open(1, 0, 0, &mut out);
        for t in 1..=200 {
            a.poll(t * 200, t, &mut out);
        }
        assert_eq!(welcomes(&out, 1), 50, "at most 50 sends");
    }

    #[test]
    fn token_zone_admits_only_valid_tokens() {
        let mut cfg = AdmissionConfig::new(1);
        cfg.require_token = true;
        let mut a = Admission::new(cfg);
        let mut out = Vec::new();
        let mut check = |t: &str| match t {
            "good" => TokenVerdict::Admit("ann".into()),
            "later" => TokenVerdict::NotReady,
            _ => TokenVerdict::Refuse("token_bad_signature: forged".into()),
        };
        for s in 1..=4 {
            a.open(s, 0, 0, &mut out);
        }
        assert!(out.is_empty(), "nothing is sent before a token: {out:?}");
        let hello = |t: Option<&str>| ControlMessage::Hello {
            id: "x".into(),
            token: t.map(str::to_owned),
        };
        a.control(1, &hello(Some("good")), false, 5, 0, &mut check, &mut out);
        assert!(out.contains(&Action::Admitted {
            session: 1,
            subject: Some("ann".into())
        }));
        assert_eq!(welcomes(&out, 1), 1);
        out.clear();
        a.control(2, &hello(None), false, 5, 0, &mut check, &mut out);
        assert!(
            matches!(&out[..], [Action::Close { session: 2, code: close_code::FORBIDDEN, reason }] if reason.contains("join token required")),
            "{out:?}"
        );
        out.clear();
        a.control(3, &hello(Some("forged")), false, 5, 0, &mut check, &mut out);
        assert!(
            matches!(&out[..], [Action::Close { session: 3, code: close_code::FORBIDDEN, reason }] if reason.contains("token_bad_signature")),
            "{out:?}"
        );
        out.clear();
        a.control(4, &hello(Some("later")), false, 5, 0, &mut check, &mut out);
        assert!(out.is_empty(), "not ready: wait for the resent hello");
        // Join and ping before admission: ping is answered, join is not.
        a.control(
            4,
            &ControlMessage::Join { peer_id: 9 },
            true,
            6,
            0,
            &mut check,
            &mut out,
        );
        assert!(out.is_empty(), "no join before admission");
        assert_eq!(a.admitted_count(), 1);
        // Session 4 never shows a valid token: closed at the deadline, once.
        a.close(2);
        a.close(3);
        a.poll(9_999, 0, &mut out);
        assert!(!out.iter().any(|x| matches!(x, Action::Close { .. })));
        a.poll(10_000, 0, &mut out);
        a.poll(10_500, 0, &mut out);
        let closes: Vec<_> = out
            .iter()
            .filter(|x| matches!(x, Action::Close { session: 4, .. }))
            .collect();
        assert_eq!(closes.len(), 1, "{out:?}");
    }

    #[test]
    fn a_join_sent_before_the_token_is_answered_on_admission() {
        let mut cfg = AdmissionConfig::new(1);
        cfg.require_token = true;
        let mut a = Admission::new(cfg);
        let mut out = Vec::new();
        a.open(4, 0, 0, &mut out);
        let mut ok = |_: &str| TokenVerdict::Admit("cy".into());
        a.control(
            4,
            &ControlMessage::Join { peer_id: 9 },
            true,
            1,
            0,
            &mut ok,
            &mut out,
        );
        assert!(out.is_empty(), "no joined before the token: {out:?}");
        let hello = ControlMessage::Hello {
            id: "x".into(),
            token: Some("good".into()),
        };
        a.control(4, &hello, false, 2, 0, &mut ok, &mut out);
        let joined: Vec<_> = out
            .iter()
            .filter(|x| {
                matches!(x, Action::Send { session: 4, bytes, reliable: true }
                if ControlMessage::decode(bytes) == Ok(ControlMessage::Joined { peer_id: 9 }))
            })
            .collect();
        assert_eq!(joined.len(), 1, "{out:?}");
    }

    #[test]
    fn revoking_a_subject_closes_exactly_its_sessions() {
        let mut cfg = AdmissionConfig::new(1);
        cfg.require_token = true;
        let mut a = Admission::new(cfg);
        let mut out = Vec::new();
        let mut check = |t: &str| TokenVerdict::Admit(t.to_owned());
        for (s, who) in [(1, "ann"), (2, "bob"), (3, "ann")] {
            a.open(s, 0, 0, &mut out);
            let hello = ControlMessage::Hello {
                id: "x".into(),
                token: Some(who.into()),
            };
            a.control(s, &hello, false, 1, 0, &mut check, &mut out);
        }
        assert_eq!(
            a.admitted_subjects(),
            vec!["ann".to_owned(), "bob".to_owned()]
        );
        out.clear();
        a.revoke("ann", &mut out);
        let closed: Vec<u64> = out
            .iter()
            .filter_map(|x| match x {
                Action::Close {
                    session,
                    code: close_code::FORBIDDEN,
                    reason,
                } if reason.contains("revoked") => Some(*session),
                _ => None,
            })
            .collect();
        assert_eq!(closed, vec![1, 3]);
        assert_eq!(a.admitted_count(), 1, "bob stays");
        out.clear();
        a.poll(60_000, 0, &mut out);
        assert!(
            !out.iter().any(|x| matches!(x, Action::Close { .. })),
            "revoked sessions are not closed twice: {out:?}"
        );
    }

    fn hello(token: &str) -> ControlMessage {
        ControlMessage::Hello {
            id: "x".into(),
            token: Some(token.into()),
        }
    }

    #[test]
    fn placing_is_allowed_without_tokens_and_by_the_tokens_place_claim_only() {
        let mut out = Vec::new();
        let mut open = Admission::new(AdmissionConfig::new(0));
        open.open(1, 0, 0, &mut out);
        assert!(open.may_place(1), "no tokens: every admitted player places");
        open.close(1);
        assert!(!open.may_place(1), "a closed session places nothing");

        let mut cfg = AdmissionConfig::new(1);
        cfg.require_token = true;
        let mut a = Admission::new(cfg);
        let mut check = |t: &str| match t {
            "plain" => TokenVerdict::Admit("old".into()),
            _ => TokenVerdict::AdmitOnce {
                subject: t.into(),
                token_id: t.into(),
                place: t == "placer",
            },
        };
        for (s, token) in [(1, "placer"), (2, "watcher"), (3, "plain")] {
            a.open(s, 0, 0, &mut out);
            assert!(!a.may_place(s), "not before admission");
            a.control(s, &hello(token), false, 1, 0, &mut check, &mut out);
            assert!(a.is_admitted(s), "{token} admitted");
        }
        assert!(a.may_place(1), "the place claim");
        assert!(!a.may_place(2), "a token without the claim");
        assert!(!a.may_place(3), "a verdict without a claim");
        a.revoke("placer", &mut out);
        assert!(!a.may_place(1), "revoked: no longer admitted");
        a.open(4, 0, 0, &mut out);
        assert!(a.admit_by_ticket(4, "ann".into(), false, 2, 0, &mut out));
        assert!(!a.may_place(4), "a ticket that says no");
    }

    #[test]
    fn a_token_keeps_one_live_session_the_newest() {
        let mut cfg = AdmissionConfig::new(1);
        cfg.require_token = true;
        let mut a = Admission::new(cfg);
        let mut out = Vec::new();
        // The token text names its id here; a real zone reads `jti` from the verified claims.
        let mut check = |t: &str| TokenVerdict::AdmitOnce {
            subject: "ann".into(),
            token_id: t.to_owned(),
            place: false,
        };
        a.open(1, 0, 0, &mut out);
        a.control(1, &hello("jti-1"), false, 1, 0, &mut check, &mut out);
        a.open(2, 0, 0, &mut out);
        a.control(2, &hello("jti-2"), false, 1, 0, &mut check, &mut out);
        assert_eq!(a.admitted_count(), 2, "two tokens, two sessions");
        out.clear();
        // Session 3 shows the token of session 1: session 1 is closed, 3 admitted.
        a.open(3, 0, 0, &mut out);
        a.control(3, &hello("jti-1"), false, 2, 0, &mut check, &mut out);
        let closed: Vec<(u64, &str)> = out
            .iter()
            .filter_map(|x| match x {
                Action::Close {
                    session,
                    code: close_code::FORBIDDEN,
                    reason,
                } => Some((*session, reason.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(closed.len(), 1, "{out:?}");
        assert_eq!(closed[0].0, 1);
        assert!(
            closed[0].1.contains("replaced by a newer session"),
            "{}",
            closed[0].1
        );
        assert!(a.is_admitted(3) && !a.is_admitted(1) && a.is_admitted(2));
        assert_eq!(a.admitted_count(), 2);
        // The hello resent on session 3 does not close anything.
        out.clear();
        a.control(3, &hello("jti-1"), false, 3, 0, &mut check, &mut out);
        assert!(
            !out.iter().any(|x| matches!(x, Action::Close { .. })),
            "{out:?}"
        );
        // Once 1 is gone, closing it does not free the token that 3 holds.
        a.close(1);
        a.open(4, 0, 0, &mut out);
        out.clear();
        a.control(4, &hello("jti-1"), false, 4, 0, &mut check, &mut out);
        let closed: Vec<u64> = out
            .iter()
            .filter_map(|x| match x {
                Action::Close { session, .. } => Some(*session),
                _ => None,
            })
            .collect();
        assert_eq!(closed, vec![3], "the live holder is replaced: {out:?}");
        // A closed holder frees its token: the next session is admitted without a close.
        a.close(3);
        a.close(4);
        a.open(5, 0, 0, &mut out);
        out.clear();
        a.control(5, &hello("jti-1"), false, 5, 0, &mut check, &mut out);
        assert!(
            !out.iter().any(|x| matches!(x, Action::Close { .. })),
            "{out:?}"
        );
        assert!(a.is_admitted(5));
        assert_eq!(a.token_sessions.len(), 2, "jti-1 -> 5 and jti-2 -> 2 only");
    }
}
