//! `GET /shards` in pages, against a real backend process: following `next` visits every
//! visible shard once, in registration order, even while shards come and go between pages;
//! `map` filters; bad `limit`, `after` or unknown parameters are refused with a clear error.

mod common;

use std::collections::HashSet;

use common::{Backend, account, register, shard_body};
use fabric_backend::client::{Client, ClientError};
use fabric_backend::model::{ShardList, ShardQuery};

fn names(list: &ShardList) -> Vec<String> {
    list.shards.iter().map(|s| s.name.clone()).collect()
}

async fn page(c: &Client, key: Option<&str>, limit: u32, after: Option<String>) -> ShardList {
    let q = ShardQuery {
        limit: Some(limit),
        after,
        map: None,
    };
    c.list_page(key, &q).await.expect("page")
}

async fn refused(c: &Client, query: &str) -> (u16, String) {
    let r = c
        .raw(
            hyper::Method::GET,
            &format!("/shards?{query}"),
            None,
            None,
            vec![],
        )
        .await
        .expect("request");
    (r.status.as_u16(), r.error_code().unwrap_or_default())
}

#[tokio::test]
async fn pages_visit_every_shard_once_in_registration_order() {
    let be = Backend::spawn(&["--max-shards-per-account", "100"]);
    let c = be.client();
    let ann = account(&c, "ann").await;
    let bob = account(&c, "bob").await;
    let mut registered = Vec::new();
    for i in 0..7 {
        let mut body = shard_body(&format!("s{i}"));
        if i % 3 == 2 {
            body.map = "harbour".into();
        }
        registered.push(register(&c, &ann, &body).await);
    }
    // Bob's private shard is not in anyone else's pages.
    let mut private = shard_body("bob-private");
    private.public = Some(false);
    register(&c, &bob, &private).await;

    // Listing order is registration time, then id: shards registered within one millisecond
    // come in id order, so the expected order is what one large page says.
    let full = names(&page(&c, None, 1000, None).await);
    assert_eq!(full.len(), 7, "public shards only: {full:?}");
    let first = page(&c, None, 3, None).await;
    assert_eq!(names(&first), full[..3]);
    let cursor = first.next.clone().expect("more pages");
    // Between pages: a shard of the first page goes away and a new one arrives.
    let gone = registered
        .iter()
        .zip(0..)
        .find(|(_, i)| format!("s{i}") == full[0])
        .map(|(r, _)| r.id)
        .unwrap();
    c.delete(gone, &ann).await.unwrap();
    register(&c, &ann, &shard_body("s7")).await;
    let after_change = names(&page(&c, None, 1000, None).await);
    let at = after_change.iter().position(|n| *n == full[2]).unwrap();
    let rest = &after_change[at + 1..];
    assert_eq!(
        rest.len(),
        5,
        "the four unseen shards and the new one: {after_change:?}"
    );
    let second = page(&c, None, 3, Some(cursor)).await;
    assert_eq!(names(&second), rest[..3], "no shift, no repeat");
    let third = page(&c, None, 3, second.next.clone()).await;
    assert_eq!(names(&third), rest[3..]);
    assert_eq!(third.next, None, "last page");

    // The whole walk through the client helper, as bob (his private shard included).
    let all = c.list_all(Some(&bob), None, 2).await.unwrap();
    let walked: Vec<String> = all.iter().map(|s| s.name.clone()).collect();
    assert_eq!(walked, names(&page(&c, Some(&bob), 1000, None).await));
    assert_eq!(walked.len(), 8);
    assert!(walked.contains(&"bob-private".to_owned()));
    assert_eq!(
        all.iter().map(|s| s.id).collect::<HashSet<_>>().len(),
        all.len(),
        "each shard once"
    );
    let harbour = c.list_all(None, Some("harbour"), 1).await.unwrap();
    let mut harbour: Vec<&str> = harbour.iter().map(|s| s.name.as_str()).collect();
    harbour.sort_unstable();
    assert_eq!(harbour, ["s2", "s5"]);

    // The default page is the old answer for small registries, with `next: null`.
    let plain = c.list(None).await.unwrap();
    assert_eq!(plain.shards.len(), 7);
    assert_eq!(plain.next, None);
}

#[tokio::test]
async fn bad_page_parameters_are_refused() {
    let be = Backend::spawn(&[]);
    let c = be.client();
    for (query, status, code) in [
        ("limit=0", 422, "invalid_field"),
        ("limit=1001", 422, "invalid_field"),
        ("limit=ten", 400, "invalid_query"),
        ("after=nope", 422, "invalid_field"),
        ("after=12.not-a-uuid", 422, "invalid_field"),
        (
            "after=-1.00000000-0000-0000-0000-000000000001",
            422,
            "invalid_field",
        ),
        ("order=desc", 400, "invalid_query"),
    ] {
        assert_eq!(
            refused(&c, query).await,
            (status, code.to_owned()),
            "{query}"
        );
    }
    let long_map = format!("map={}", "m".repeat(300));
    assert_eq!(refused(&c, &long_map).await.0, 422);
    // Valid edges still answer.
    let ok = page(&c, None, 1000, None).await;
    assert!(ok.shards.is_empty() && ok.next.is_none());
    match c
        .list_page(
            None,
            &ShardQuery {
                limit: Some(1),
                after: Some("1.00000000-0000-0000-0000-000000000001".into()),
                map: None,
            },
        )
        .await
    {
        Ok(l) => assert!(l.shards.is_empty()),
        Err(e @ ClientError::Api { .. }) => panic!("a well-formed cursor is accepted: {e}"),
        Err(e) => panic!("{e}"),
    }
}
