//! Fabric membership against the real backend process: members register with `fabric`, get
//! link credentials that verify offline with the registry's key, and are listed by fabric;
//! another account cannot join the fabric, a different zone count is refused, a restarted zone
//! replaces its entry, a deleted shard leaves the list.

mod common;

use common::{Backend, account, register, shard_body};
use ed25519_dalek::SigningKey;
use fabric_auth::LinkCredentialVerifier;
use fabric_auth::keys::{public_key_from_b64, public_key_to_b64};
use fabric_auth::link_credential::credential_from_text;
use fabric_backend::model::{FabricJoin, RegisterShard};

fn member(name: &str, zone: u8, zones: u8, port: u32) -> RegisterShard {
    RegisterShard {
        fabric: Some(FabricJoin {
            name: name.into(),
            zone,
            zones,
            link_address: None,
            link_port: port,
            link_cert_hash: format!("hash-{zone}"),
            link_next_cert_hash: None,
            link_public_key: public_key_to_b64(
                &SigningKey::from_bytes(&[zone + 1; 32]).verifying_key(),
            ),
        }),
        ..shard_body(&format!("{name}-{zone}"))
    }
}

#[tokio::test]
async fn members_register_get_credentials_and_are_listed_by_fabric() {
    let be = Backend::spawn(&[]);
    let c = be.client();
    let key = account(&c, "operator").await;
    let r0 = register(&c, &key, &member("world", 0, 2, 7500)).await;
    let r1 = register(&c, &key, &member("world", 1, 2, 7501)).await;
    let grant = r1.link.expect("a member gets a link credential");
    let issuer = public_key_from_b64(&grant.issuer_key).unwrap();
    let verifier = LinkCredentialVerifier::new("world", 2, [issuer]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = verifier
        .verify(&credential_from_text(&grant.credential).unwrap(), now)
        .expect("the credential verifies offline");
    assert_eq!((claims.zone, claims.zones), (1, 2));
    assert_eq!(
        claims.link_key,
        SigningKey::from_bytes(&[2; 32]).verifying_key(),
        "it binds the zone's link key"
    );
    assert!(grant.expires_at > now, "expires later");
    let plain = register(&c, &key, &shard_body("alone")).await;
    assert!(plain.link.is_none(), "no credential without a fabric");

    let list = c.fabric_members(&key, "world").await.unwrap();
    let zones: Vec<(u8, String)> = list
        .members
        .iter()
        .map(|m| (m.zone, m.link_address.clone()))
        .collect();
    assert_eq!(
        zones,
        vec![(0, "127.0.0.1:7500".into()), (1, "127.0.0.1:7501".into())],
        "listed by zone, link address from the caller's IP and the link port"
    );
    assert_eq!(list.members[0].shard_id, r0.id);
    assert!(
        c.fabric_members(&key, "other")
            .await
            .unwrap()
            .members
            .is_empty()
    );

    // Another account may not join (or see) this fabric.
    let stranger = account(&c, "stranger").await;
    let err = c
        .register(&stranger, &member("world", 1, 2, 7600))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("fabric_taken"), "{err}");
    assert!(
        c.fabric_members(&stranger, "world")
            .await
            .unwrap()
            .members
            .is_empty()
    );
    // Another zone count is refused; bad fields are invalid.
    let err = c
        .register(&key, &member("world", 1, 3, 7600))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("fabric_size"), "{err}");
    for bad in [
        member("world", 2, 2, 7600),
        member("", 0, 2, 1),
        member("w", 0, 2, 0),
    ] {
        let err = c.register(&key, &bad).await.unwrap_err();
        assert_eq!(err.code(), Some("invalid_field"), "{err}");
    }
    let mut bad_key = member("world", 1, 2, 7600);
    bad_key.fabric.as_mut().unwrap().link_public_key = "nope".into();
    assert_eq!(
        c.register(&key, &bad_key).await.unwrap_err().code(),
        Some("invalid_field")
    );

    // A restarted zone 1 replaces its entry; a deleted shard leaves the list.
    let again = register(&c, &key, &member("world", 1, 2, 7700)).await;
    let list = c.fabric_members(&key, "world").await.unwrap();
    assert_eq!(list.members.len(), 2, "still two members");
    assert_eq!(
        (
            list.members[1].shard_id,
            list.members[1].link_address.as_str()
        ),
        (again.id, "127.0.0.1:7700")
    );
    c.delete(r0.id, &r0.shard_secret).await.unwrap();
    let list = c.fabric_members(&key, "world").await.unwrap();
    assert_eq!(
        list.members.iter().map(|m| m.zone).collect::<Vec<_>>(),
        vec![1]
    );
}
