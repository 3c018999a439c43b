//! Claiming an unowned group: of concurrent claims exactly one wins. Before the fix the
//! "has no owner yet" check and the write were separate store calls, so racing claimants
//! could all pass the check and all become owners. The other way round: an object's last owner
//! cannot be removed (409 `last_owner`), also when its last two owners leave at once.

mod common;

use fabric_backend::model::TupleBody;

use common::{Backend, account};

#[tokio::test]
async fn of_concurrent_claims_on_a_group_exactly_one_wins() {
    let be = Backend::spawn(&[]);
    let c = be.client();
    const CLAIMANTS: usize = 8;
    for round in 0..5 {
        let group = format!("group:g{round}");
        let mut keys = Vec::new();
        for i in 0..CLAIMANTS {
            keys.push((
                format!("u{round}x{i}"),
                account(&c, &format!("u{round}x{i}")).await,
            ));
        }
        let claims = keys.iter().map(|(name, key)| {
            // One connection per claimant, so the requests really run at once.
            let c = be.client();
            let body = TupleBody {
                object: group.clone(),
                relation: "owner".into(),
                subject: format!("user:{name}"),
            };
            let key = key.clone();
            async move { c.add_tuple(&key, &body).await }
        });
        let results = futures_util::future::join_all(claims).await;
        let winners = results
            .iter()
            .filter(|r| matches!(r, Ok(t) if t.changed))
            .count();
        assert_eq!(
            winners, 1,
            "round {round}: exactly one claim wins: {results:?}"
        );
        for r in results.iter().filter(|r| r.is_err()) {
            let e = r.as_ref().unwrap_err();
            assert_eq!(e.code(), Some("forbidden"), "the others are refused: {e:?}");
        }
        let winner = results.iter().position(|r| r.is_ok()).unwrap();
        let owners = c
            .raw(
                axum::http::Method::GET,
                &format!("/relationships?object={group}"),
                Some(&keys[winner].1),
                None,
                Vec::new(),
            )
            .await
            .unwrap()
            .json();
        assert_eq!(
            owners["tuples"].as_array().map(Vec::len),
            Some(1),
            "one owner tuple: {owners}"
        );
    }
}

#[tokio::test]
async fn of_two_owners_leaving_at_once_one_stays() {
    let be = Backend::spawn(&[]);
    let c = be.client();
    for round in 0..5 {
        let group = format!("group:pair{round}");
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        let (ka, kb) = (account(&c, &a).await, account(&c, &b).await);
        let owner = |who: &str| TupleBody {
            object: group.clone(),
            relation: "owner".into(),
            subject: format!("user:{who}"),
        };
        assert!(
            c.add_tuple(&ka, &owner(&a)).await.unwrap().changed,
            "claimed"
        );
        assert!(
            c.add_tuple(&ka, &owner(&b)).await.unwrap().changed,
            "second owner"
        );
        let (ca, cb) = (be.client(), be.client());
        let (oa, ob) = (owner(&a), owner(&b));
        let (ra, rb) = tokio::join!(ca.remove_tuple(&ka, &oa), cb.remove_tuple(&kb, &ob));
        let results = [ra, rb];
        let removed = results
            .iter()
            .filter(|r| matches!(r, Ok(t) if t.changed))
            .count();
        assert_eq!(removed, 1, "round {round}: exactly one leaves: {results:?}");
        let refused = results
            .iter()
            .find_map(|r| r.as_ref().err())
            .expect("one refused");
        assert_eq!(refused.code(), Some("last_owner"), "{refused:?}");
        let stayed = if results[0].is_ok() { &kb } else { &ka };
        let owners = c
            .raw(
                axum::http::Method::GET,
                &format!("/relationships?object={group}"),
                Some(stayed),
                None,
                Vec::new(),
            )
            .await
            .unwrap()
            .json();
        assert_eq!(
            owners["tuples"].as_array().map(Vec::len),
            Some(1),
            "one owner left: {owners}"
        );
    }
}
