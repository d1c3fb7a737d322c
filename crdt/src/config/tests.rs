use std::collections::{BTreeMap, BTreeSet};

use automerge::{ActorId, Automerge, ROOT, ReadDoc, transaction::Transactable};
use proptest::prelude::*;

use super::*;
use crate::keys::{Digest, Ed25519, Keypair, PublicKey};
use crate::replica::{Ctx, Merge, Rejected, Replica};
use crate::trust::tests::{key, sign};
use crate::trust::{Role, SignedTrust, TrustChain, TrustDoc};

/// Keys 100 and 101 hold config (and 102 when `with_102`); keys 1 and 2
/// are roots.
fn trust_doc(version: u64, revoked: &[PublicKey]) -> TrustDoc {
    let mut keys = BTreeMap::new();
    for root in [1, 2] {
        keys.insert(key(root).public(), BTreeSet::from([Role::Root]));
    }
    for config in [100, 101, 102] {
        let public = key(config).public();
        if !revoked.contains(&public) {
            keys.insert(public, BTreeSet::from([Role::Config]));
        }
    }
    TrustDoc {
        fleet: "test".into(),
        version,
        keys,
        root_threshold: 2,
        config_threshold: 2,
        revoked: revoked.iter().copied().collect(),
    }
}

fn signed_trust(version: u64, revoked: &[PublicKey]) -> SignedTrust {
    sign(trust_doc(version, revoked), &[&key(1), &key(2)])
}

fn chain() -> TrustChain {
    TrustChain::new(signed_trust(1, &[]), &Ed25519).unwrap()
}

fn ctx(trust: &TrustChain) -> Ctx<'_> {
    Ctx {
        trust,
        admitted: &|_| true,
        verifier: &Ed25519,
        now_millis: 0,
    }
}

fn map(pairs: &[(&str, Value)]) -> Value {
    Value::Map(
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect(),
    )
}

fn current(store: &ConfigStore, doc: &str) -> Value {
    store.value_at(doc, &store.heads(doc)).unwrap()
}

/// A change by `author` outside any store: how an unauthorized or
/// malicious writer would make one.
fn raw_change(author: &Keypair, key: &str, value: i64) -> SignedChange {
    let mut doc = Automerge::new();
    doc.set_actor(ActorId::from(&author.public().0[..]));
    let mut tx = doc.transaction();
    tx.put(ROOT, key, value).unwrap();
    tx.commit();
    let mut change = doc.get_last_local_change().unwrap();
    SignedChange::sign("app", 1, author, change.bytes().into_owned()).unwrap()
}

#[test]
fn authored_content_reads_back_and_nested_maps_merge() {
    let trust = chain();
    let ctx = ctx(&trust);
    let (mut a, mut b) = (ConfigStore::new(), ConfigStore::new());
    let base = map(&[
        (
            "db",
            map(&[("host", Value::Str("x".into())), ("port", Value::Int(5))]),
        ),
        ("list", Value::List(vec![Value::Int(1), Value::Null])),
    ]);
    let first = a.author("app", &key(100), 1, &base, &ctx).unwrap().unwrap();
    assert_eq!(current(&a, "app"), base);
    assert_eq!(a.author("app", &key(100), 1, &base, &ctx), Ok(None));
    assert!(matches!(
        b.merge(ConfigEntry::Change(first), &ctx),
        Ok(Merge::Changed { .. })
    ));
    // Concurrent edits of different keys in one nested map both survive.
    let mut on_a = base.clone();
    let mut on_b = base.clone();
    if let (Value::Map(top_a), Value::Map(top_b)) = (&mut on_a, &mut on_b) {
        if let Some(Value::Map(db)) = top_a.get_mut("db") {
            db.insert("port".into(), Value::Int(6));
        }
        if let Some(Value::Map(db)) = top_b.get_mut("db") {
            db.remove("host");
        }
    }
    let from_a = a.author("app", &key(100), 1, &on_a, &ctx).unwrap().unwrap();
    let from_b = b.author("app", &key(101), 1, &on_b, &ctx).unwrap().unwrap();
    a.merge(ConfigEntry::Change(from_b), &ctx).unwrap();
    b.merge(ConfigEntry::Change(from_a), &ctx).unwrap();
    let merged = map(&[
        ("db", map(&[("port", Value::Int(6))])),
        ("list", Value::List(vec![Value::Int(1), Value::Null])),
    ]);
    assert_eq!(current(&a, "app"), merged);
    assert_eq!(current(&b, "app"), merged);
    assert_eq!(
        a.value_at("app", &a.heads("app")),
        b.value_at("app", &b.heads("app"))
    );
}

#[test]
fn a_toml_file_deserializes_into_a_value() {
    let value: Value =
        toml::from_str("n = 3\nf = 1.5\n[db]\nhosts = [\"a\", \"b\"]\ntls = true\n").unwrap();
    let expected = map(&[
        ("n", Value::Int(3)),
        ("f", Value::Float(1.5)),
        (
            "db",
            map(&[
                (
                    "hosts",
                    Value::List(vec![Value::Str("a".into()), Value::Str("b".into())]),
                ),
                ("tls", Value::Bool(true)),
            ]),
        ),
    ]);
    assert_eq!(value, expected);
}

#[test]
fn bad_unauthorized_and_mismatched_changes_are_refused() {
    let trust = chain();
    let ctx = ctx(&trust);
    let mut store = ConfigStore::new();
    let unauthorized = raw_change(&key(50), "k", 1);
    assert!(matches!(
        store.merge(ConfigEntry::Change(unauthorized), &ctx),
        Err(Rejected::Unauthorized(_))
    ));
    let mut tampered = raw_change(&key(100), "k", 1);
    tampered.signature = key(100).sign_digest(&Digest::default());
    assert_eq!(
        store.merge(ConfigEntry::Change(tampered), &ctx),
        Err(Rejected::BadSignature)
    );
    let mut impostor = raw_change(&key(100), "k", 1);
    impostor.author = key(101).public();
    assert!(matches!(
        store.merge(ConfigEntry::Change(impostor), &ctx),
        Err(Rejected::Unauthorized(_))
    ));
    let mut garbage = raw_change(&key(100), "k", 1);
    garbage.change = vec![0x85, 0x6f, 0x4a, 0x83, 1, 2, 3];
    assert!(matches!(
        store.merge(ConfigEntry::Change(garbage), &ctx),
        Err(Rejected::Malformed(_))
    ));
    assert!(store.versions().is_empty());
}

#[test]
fn children_wait_for_parents_and_a_batch_with_one_bad_entry_applies_the_rest() {
    let trust = chain();
    let ctx = ctx(&trust);
    let mut author = ConfigStore::new();
    let changes: Vec<SignedChange> = (0..6)
        .map(|n| {
            let content = map(&[("n", Value::Int(n))]);
            author
                .author("app", &key(100), 1, &content, &ctx)
                .unwrap()
                .unwrap()
        })
        .collect();
    let mut store = ConfigStore::new();
    assert_eq!(
        store.merge(ConfigEntry::Change(changes[5].clone()), &ctx),
        Ok(Merge::Pending)
    );
    assert_eq!(store.pending_len(), 1);
    let mut batch: Vec<ConfigEntry> = changes[..5]
        .iter()
        .rev()
        .cloned()
        .map(ConfigEntry::Change)
        .collect();
    let mut bad = raw_change(&key(101), "other", 1);
    bad.signature = key(101).sign_digest(&Digest::default());
    batch.insert(2, ConfigEntry::Change(bad));
    let results = store.merge_batch(batch, &ctx);
    assert_eq!(results[2], Err(Rejected::BadSignature));
    assert!(
        results
            .iter()
            .enumerate()
            .all(|(index, result)| index == 2 || matches!(result, Ok(Merge::Changed { .. })))
    );
    assert_eq!(store.pending_len(), 0);
    assert_eq!(current(&store, "app"), map(&[("n", Value::Int(5))]));
    assert_eq!(store.heads("app"), author.heads("app"));
}

/// Two stores at the same state each make a change by `author`: one
/// sequence number, two hashes.
fn equivocate(base: &ConfigStore, author: &Keypair, ctx: &Ctx<'_>) -> (SignedChange, SignedChange) {
    let mut left = ConfigStore::new();
    let mut right = ConfigStore::new();
    for (_, key) in base.versions() {
        if let Some(entry) = base.entry(&key) {
            left.merge(entry.clone(), ctx).unwrap();
            right.merge(entry, ctx).unwrap();
        }
    }
    let one = left
        .author("app", author, 1, &map(&[("fork", Value::Int(1))]), ctx)
        .unwrap()
        .unwrap();
    let two = right
        .author("app", author, 1, &map(&[("fork", Value::Int(2))]), ctx)
        .unwrap()
        .unwrap();
    (one, two)
}

#[test]
fn equivocation_quarantines_and_the_evidence_spreads() {
    let trust = chain();
    let ctx = ctx(&trust);
    let mut base = ConfigStore::new();
    base.author("app", &key(100), 1, &map(&[("a", Value::Int(1))]), &ctx)
        .unwrap();
    let (one, two) = equivocate(&base, &key(101), &ctx);
    let mut store = ConfigStore::new();
    for (_, key) in base.versions() {
        store.merge(base.entry(&key).unwrap(), &ctx).unwrap();
    }
    store.merge(ConfigEntry::Change(one.clone()), &ctx).unwrap();
    assert_eq!(
        store.merge(ConfigEntry::Change(two.clone()), &ctx),
        Err(Rejected::Quarantined)
    );
    assert_eq!(
        store.quarantined().copied().collect::<Vec<_>>(),
        vec![key(101).public()]
    );
    assert_eq!(current(&store, "app"), map(&[("a", Value::Int(1))]));
    // Another replica that saw only one of the two learns from the evidence.
    let mut other = ConfigStore::new();
    for (_, key) in base.versions() {
        other.merge(base.entry(&key).unwrap(), &ctx).unwrap();
    }
    other.merge(ConfigEntry::Change(two), &ctx).unwrap();
    for (_, key) in store.versions() {
        other.merge(store.entry(&key).unwrap(), &ctx).unwrap();
    }
    assert_eq!(other.versions(), store.versions());
    assert_eq!(current(&other, "app"), current(&store, "app"));
}

#[test]
fn the_guard_catches_automerges_own_panics_on_the_repro_inputs() {
    let parse =
        guard::guarded(|| automerge::Change::from_bytes(hostile::parse_panic(&key(100).public())));
    let panicked = parse.unwrap_err();
    assert!(panicked.0.contains("types.rs"), "{panicked:?}");
    let change = automerge::Change::from_bytes(hostile::apply_panic(&key(100).public())).unwrap();
    let mut doc = Automerge::new();
    let panicked = guard::guarded(|| doc.apply_changes([change])).unwrap_err();
    assert!(panicked.0.contains("Missing from Index"), "{panicked:?}");
}

#[test]
fn crafted_concurrent_changes_read_the_same_whatever_order_and_batches_they_came_in() {
    // automerge 0.12 alone builds three different documents from these
    // two changes: taken in one call, or one call each in either order.
    // (Built with debug assertions, automerge panics on its own op order
    // instead.)
    let [a, b] = hostile::root_inserts(&key(100).public(), &key(101).public());
    let parse = |bytes: &Vec<u8>| automerge::Change::from_bytes(bytes.clone()).unwrap();
    let length = |calls: &[&[&Vec<u8>]]| {
        let mut doc = Automerge::new();
        let applied = guard::guarded(|| {
            for call in calls {
                doc.apply_changes(call.iter().map(|bytes| parse(bytes)))?;
            }
            Ok::<_, automerge::AutomergeError>(doc.length(ROOT))
        });
        applied.ok().and_then(Result::ok)
    };
    let lengths = [
        length(&[&[&a, &b]]),
        length(&[&[&a], &[&b]]),
        length(&[&[&b], &[&a]]),
    ];
    if cfg!(debug_assertions) {
        assert!(lengths.contains(&None), "{lengths:?}");
    } else {
        let distinct: BTreeSet<Option<usize>> = lengths.into_iter().collect();
        assert_eq!(
            distinct.len(),
            3,
            "automerge no longer diverges: {lengths:?}"
        );
    }

    // Stores build every document in one canonical order, one change at
    // a time, so they read the same whatever the arrival.
    let trust = chain();
    let ctx = ctx(&trust);
    let a = ConfigEntry::Change(SignedChange::sign("app", 1, &key(100), a).unwrap());
    let b = ConfigEntry::Change(SignedChange::sign("app", 1, &key(101), b).unwrap());
    // With automerge's debug assertions, each change panics automerge on
    // its own, so every store convicts both authors alike.
    let mut batch = ConfigStore::new();
    let merged = batch.merge_batch(vec![a.clone(), b.clone()], &ctx);
    if cfg!(debug_assertions) {
        assert_eq!(batch.quarantined().count(), 2, "{merged:?}");
    } else {
        assert!(merged.iter().all(Result::is_ok), "{merged:?}");
    }
    let reads = |store: &ConfigStore| {
        let quarantined: Vec<PublicKey> = store.quarantined().copied().collect();
        let content = store.value_at("app", &store.heads("app"));
        (sorted_versions(store), quarantined, content)
    };
    for order in [[&a, &b], [&b, &a]] {
        let mut store = ConfigStore::new();
        for change in order {
            let _ = store.merge(change.clone(), &ctx);
        }
        assert_eq!(reads(&store), reads(&batch));
    }
    let mut reversed = ConfigStore::new();
    reversed.merge_batch(vec![b, a], &ctx);
    assert_eq!(reads(&reversed), reads(&batch));
}

#[test]
fn a_change_automerge_panics_on_while_parsing_is_refused_before_it_and_harmless() {
    let trust = chain();
    let ctx = ctx(&trust);
    let mut store = ConfigStore::new();
    let change = hostile::unparsable_change("app", 1, key(100).public());
    assert_eq!(change.key(), None);
    let refused = store.merge(ConfigEntry::Change(change.clone()), &ctx);
    let Err(Rejected::Malformed(reason)) = refused else {
        panic!("{refused:?}");
    };
    // The shape check refuses it before automerge parses it.
    assert!(reason.contains("refused before parsing"), "{reason}");
    assert_eq!(store.panics_caught(), 0);
    assert!(store.versions().is_empty());
    // Its bytes are not even evidence: the signed digest names a hash
    // only a parse gives.
    let evidence = MalformedChange {
        change,
        history: Vec::new(),
    };
    assert!(matches!(
        store.merge(ConfigEntry::Malformed(evidence), &ctx),
        Err(Rejected::Malformed(_))
    ));
    assert!(store.quarantined().next().is_none());
    store
        .author("app", &key(100), 1, &map(&[("a", Value::Int(1))]), &ctx)
        .unwrap();
    assert_eq!(current(&store, "app"), map(&[("a", Value::Int(1))]));
}

#[test]
fn a_signed_change_automerge_panics_on_while_applying_convicts_its_author_everywhere() {
    let trust = chain();
    let ctx = ctx(&trust);
    let mut store = ConfigStore::new();
    store
        .author("app", &key(101), 1, &map(&[("a", Value::Int(1))]), &ctx)
        .unwrap();
    store
        .author("web", &key(100), 1, &map(&[("b", Value::Int(2))]), &ctx)
        .unwrap();
    let honest: Vec<ConfigEntry> = store
        .versions()
        .into_iter()
        .filter_map(|(key, _)| store.entry(&key))
        .collect();
    let bomb = SignedChange::sign(
        "boom",
        1,
        &key(100),
        hostile::apply_panic(&key(100).public()),
    )
    .unwrap();
    assert_eq!(
        store.merge(ConfigEntry::Change(bomb.clone()), &ctx),
        Err(Rejected::Quarantined)
    );
    assert!(store.panics_caught() >= 1);
    assert_eq!(
        store.quarantined().copied().collect::<Vec<_>>(),
        vec![key(100).public()]
    );
    // Key 100's other changes are gone, the rest reads back.
    assert_eq!(store.documents().collect::<Vec<_>>(), vec!["app"]);
    assert_eq!(current(&store, "app"), map(&[("a", Value::Int(1))]));
    // Offered again, it is refused before automerge sees it.
    let panics = store.panics_caught();
    assert_eq!(
        store.merge(ConfigEntry::Change(bomb.clone()), &ctx),
        Err(Rejected::Quarantined)
    );
    assert_eq!(store.panics_caught(), panics);
    let evidence: Vec<ConfigEntry> = store
        .evidence_keys()
        .filter_map(|key| store.entry(key))
        .collect();
    let [ConfigEntry::Malformed(proof)] = evidence.as_slice() else {
        panic!("{evidence:?}");
    };
    // A replica that never saw the change checks the proof itself and
    // ends in the same state.
    let mut other = ConfigStore::new();
    other.merge_batch(honest.clone(), &ctx);
    assert!(matches!(
        other.merge(ConfigEntry::Malformed(proof.clone()), &ctx),
        Ok(Merge::Changed { .. })
    ));
    assert_eq!(sorted_versions(&other), sorted_versions(&store));
    assert_eq!(current(&other, "app"), current(&store, "app"));
    // Forged proofs convict nobody: an honest change, or a history with a
    // change that is no ancestor.
    let mut third = ConfigStore::new();
    let ConfigEntry::Change(valid) = &honest[0] else {
        panic!("a change");
    };
    let framed = MalformedChange {
        change: valid.clone(),
        history: Vec::new(),
    };
    assert!(matches!(
        third.merge(ConfigEntry::Malformed(framed), &ctx),
        Err(Rejected::Malformed(_))
    ));
    let mut padded = proof.clone();
    padded.history.push(valid.change.clone());
    assert!(matches!(
        third.merge(ConfigEntry::Malformed(padded), &ctx),
        Err(Rejected::Malformed(_))
    ));
    assert!(third.quarantined().next().is_none());
}

#[test]
fn content_nested_too_deep_is_refused_when_authored_and_cut_when_read() {
    let trust = chain();
    let ctx = ctx(&trust);
    let nested = |depth: usize| {
        let mut value = Value::Int(1);
        for _ in 0..depth {
            value = map(&[("x", value)]);
        }
        value
    };
    let mut store = ConfigStore::new();
    assert_eq!(
        store.author(
            "app",
            &key(100),
            1,
            &nested(limits::VALUE_DEPTH_MAX + 1),
            &ctx
        ),
        Err(ConfigError::TooDeep {
            depth: limits::VALUE_DEPTH_MAX + 1
        })
    );
    // A writer that skips the check (any automerge client) gets content
    // that reads back cut at the bound, never a stack overflow.
    let mut doc = Automerge::new();
    doc.set_actor(ActorId::from(&key(100).public().0[..]));
    let mut tx = doc.transaction();
    let mut obj = ROOT;
    for _ in 0..10_000 {
        obj = tx.put_object(&obj, "x", automerge::ObjType::Map).unwrap();
    }
    tx.commit();
    let mut change = doc.get_last_local_change().unwrap();
    let deep = SignedChange::sign("app", 1, &key(100), change.bytes().into_owned()).unwrap();
    assert!(matches!(
        store.merge(ConfigEntry::Change(deep), &ctx),
        Ok(Merge::Changed { .. })
    ));
    assert_eq!(current(&store, "app").depth(), limits::VALUE_DEPTH_MAX);
}

#[test]
fn revocation_drops_the_revoked_authors_changes() {
    let mut trust = chain();
    let mut store = ConfigStore::new();
    let first = {
        let ctx = ctx(&trust);
        store
            .author("app", &key(100), 1, &map(&[("a", Value::Int(1))]), &ctx)
            .unwrap();
        store
            .author(
                "app",
                &key(101),
                1,
                &map(&[("a", Value::Int(1)), ("b", Value::Int(2))]),
                &ctx,
            )
            .unwrap()
            .unwrap()
    };
    trust
        .insert(signed_trust(2, &[key(101).public()]), &Ed25519)
        .unwrap();
    let ctx = ctx(&trust);
    store.trust_changed(&ctx);
    assert_eq!(current(&store, "app"), map(&[("a", Value::Int(1))]));
    assert!(matches!(
        store.merge(ConfigEntry::Change(first), &ctx),
        Err(Rejected::Unauthorized(_))
    ));
}

#[test]
fn changes_under_a_newer_trust_version_wait_for_it() {
    let mut trust = chain();
    let mut author_trust = chain();
    author_trust.insert(signed_trust(2, &[]), &Ed25519).unwrap();
    let mut author = ConfigStore::new();
    let change = author
        .author(
            "app",
            &key(100),
            2,
            &map(&[("a", Value::Int(1))]),
            &ctx(&author_trust),
        )
        .unwrap()
        .unwrap();
    let mut store = ConfigStore::new();
    assert_eq!(
        store.merge(ConfigEntry::Change(change), &ctx(&trust)),
        Ok(Merge::Pending)
    );
    trust.insert(signed_trust(2, &[]), &Ed25519).unwrap();
    store.trust_changed(&ctx(&trust));
    assert_eq!(store.pending_len(), 0);
    assert_eq!(current(&store, "app"), map(&[("a", Value::Int(1))]));
}

/// Change number `n` by `author` under trust version `trust_version`, on a
/// document of its own, as a laptop that believes `author` holds config
/// would sign it.
fn change_under(author: &Keypair, trust_version: u64, n: i64) -> SignedChange {
    let mut doc = Automerge::new();
    doc.set_actor(ActorId::from(&author.public().0[..]));
    let mut tx = doc.transaction();
    tx.put(ROOT, "n", n).unwrap();
    tx.commit();
    let mut change = doc.get_last_local_change().unwrap();
    let doc = format!("doc-{n}");
    SignedChange::sign(&doc, trust_version, author, change.bytes().into_owned()).unwrap()
}

#[test]
fn neither_one_key_nor_a_crowd_of_keys_fills_the_queue_for_a_newer_trust_version() {
    let trust = chain();
    let ctx = ctx(&trust);
    let mut store = ConfigStore::new();
    let queue = |store: &mut ConfigStore, change: SignedChange| {
        store.merge(ConfigEntry::Change(change), &ctx)
    };
    // One key unknown here: a few changes, then refused.
    let stranger = key(50);
    for n in 0..limits::FUTURE_UNKNOWN_PER_AUTHOR_MAX as i64 {
        assert_eq!(
            queue(&mut store, change_under(&stranger, 2, n)),
            Ok(Merge::Pending)
        );
    }
    assert!(matches!(
        queue(&mut store, change_under(&stranger, 2, 99)),
        Err(Rejected::QueueFull(_))
    ));
    // A crowd of fresh keys fills only the pool unknown keys share.
    let crowd = (1_000..1_000 + limits::FUTURE_UNKNOWN_MAX as u64).map(|seed| {
        let mut bytes = [0; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        Keypair::from_seed(bytes)
    });
    let refused = crowd
        .map(|member| queue(&mut store, change_under(&member, 2, 0)))
        .filter(|result| matches!(result, Err(Rejected::QueueFull(_))))
        .count();
    assert_eq!(refused, limits::FUTURE_UNKNOWN_PER_AUTHOR_MAX);
    // The fleet's operators still get in; far ahead, nobody does.
    assert_eq!(
        queue(&mut store, change_under(&key(100), 2, 1)),
        Ok(Merge::Pending)
    );
    assert!(matches!(
        queue(
            &mut store,
            change_under(&key(101), 2 + limits::FUTURE_VERSIONS_AHEAD, 1)
        ),
        Err(Rejected::QueueFull(_))
    ));
    assert_eq!(
        store.pending_len(),
        limits::FUTURE_UNKNOWN_MAX + 1,
        "the crowd's pool and the operator's change"
    );
}

#[test]
fn releases_for_a_newer_trust_version_wait_by_signer_and_strangers_share_a_small_pool() {
    let mut trust = chain();
    let mut log = ReleaseLog::new();
    let future = |version: u64, signers: &[u8]| {
        let mut release = SignedRelease::new(Release {
            rollout: None,
            doc: "app".into(),
            version,
            heads: vec![Digest([7; 32])],
            expires_millis: None,
            trust_version: 2,
        });
        for signer in signers {
            release.sign(&key(*signer));
        }
        release
    };
    let mut forged = future(1, &[]);
    forged
        .signatures
        .insert(key(100).public(), key(100).sign_digest(&Digest::default()));
    assert_eq!(log.merge(forged, &ctx(&trust)), Err(Rejected::BadSignature));
    // Keys unknown here (one the next version may add) share a pool.
    let strangers = limits::RELEASE_PENDING_UNKNOWN_MAX as u64;
    for version in 1..=strangers {
        assert_eq!(
            log.merge(future(100 + version, &[50]), &ctx(&trust)),
            Ok(Merge::Pending)
        );
    }
    assert!(matches!(
        log.merge(future(99, &[51]), &ctx(&trust)),
        Err(Rejected::QueueFull(_))
    ));
    let quota = limits::RELEASE_PENDING_PER_SIGNER_MAX as u64;
    for version in 1..=quota {
        assert_eq!(
            log.merge(future(version, &[100, 101]), &ctx(&trust)),
            Ok(Merge::Pending)
        );
    }
    assert!(matches!(
        log.merge(future(quota + 1, &[100, 101]), &ctx(&trust)),
        Err(Rejected::QueueFull(_))
    ));
    // Another config key is not crowded out by the first two (alone, it
    // misses the threshold of 2 once the trust version arrives).
    assert_eq!(
        log.merge(future(quota + 1, &[102]), &ctx(&trust)),
        Ok(Merge::Pending)
    );
    trust.insert(signed_trust(2, &[]), &Ed25519).unwrap();
    log.trust_changed(&ctx(&trust));
    assert_eq!(
        log.next("app", None).map(|release| release.release.version),
        Some(quota)
    );
}

fn release(version: u64, signers: &[u8]) -> SignedRelease {
    let mut signed = SignedRelease::new(Release {
        rollout: None,
        doc: "app".into(),
        version,
        heads: vec![Digest([version as u8; 32])],
        expires_millis: None,
        trust_version: 1,
    });
    for signer in signers {
        signed.sign(&key(*signer));
    }
    signed
}

#[test]
fn releases_need_the_threshold_and_union_their_signatures() {
    let trust = chain();
    let ctx = ctx(&trust);
    let mut log = ReleaseLog::new();
    assert!(matches!(
        log.merge(release(1, &[100]), &ctx),
        Err(Rejected::Unauthorized(_))
    ));
    assert!(matches!(
        log.merge(release(1, &[100, 50]), &ctx),
        Err(Rejected::Unauthorized(_))
    ));
    let mut forged = release(1, &[100, 101]);
    forged
        .signatures
        .insert(key(102).public(), key(102).sign_digest(&Digest::default()));
    assert_eq!(log.merge(forged, &ctx), Err(Rejected::BadSignature));
    assert!(matches!(
        log.merge(release(1, &[100, 101, 50]), &ctx),
        Ok(Merge::Changed { replaced: None, .. })
    ));
    assert!(matches!(
        log.merge(release(1, &[100, 102]), &ctx),
        Ok(Merge::Changed {
            replaced: Some(_),
            ..
        })
    ));
    assert_eq!(
        log.merge(release(1, &[101, 102]), &ctx),
        Ok(Merge::Unchanged)
    );
    let held = log.entry(&release(1, &[]).release.digest()).unwrap();
    assert_eq!(held.signatures.len(), 3);
}

#[test]
fn agents_walk_forward_and_never_roll_back() {
    let trust = chain();
    let ctx = ctx(&trust);
    let mut log = ReleaseLog::new();
    for version in [3, 1, 2] {
        log.merge(release(version, &[100, 101]), &ctx).unwrap();
    }
    assert_eq!(log.next("app", None).unwrap().release.version, 3);
    let first = log.next("app", Some(0)).unwrap();
    let applied = AppliedRelease::advance(None, first, 0).unwrap();
    assert_eq!(applied.version, 1);
    let second = log.next("app", Some(applied.version)).unwrap();
    let applied = AppliedRelease::advance(Some(&applied), second, 0).unwrap();
    assert_eq!(applied.version, 2);
    assert!(matches!(
        AppliedRelease::advance(Some(&applied), first, 0),
        Err(ReleaseError::Rollback { .. })
    ));
    let mut expiring = release(4, &[]);
    expiring.release.expires_millis = Some(10);
    assert!(expiring.release.is_expired(10));
    assert_eq!(
        AppliedRelease::advance(Some(&applied), &expiring, 10),
        Err(ReleaseError::Expired(10))
    );
}

#[test]
fn a_void_release_is_replaced_at_its_version_and_nothing_older() {
    let trust = chain();
    let ctx = ctx(&trust);
    let mut log = ReleaseLog::new();
    let ours = release(2, &[100, 101]);
    let mut theirs = release(2, &[]);
    theirs.release.heads = vec![Digest([7; 32])];
    theirs.sign(&key(100));
    theirs.sign(&key(101));
    log.merge(release(1, &[100, 101]), &ctx).unwrap();
    log.merge(ours.clone(), &ctx).unwrap();
    log.merge(theirs.clone(), &ctx).unwrap();
    let running = AppliedRelease::advance(None, &ours, 0).unwrap();
    // Running, a release is never replaced by another of its version.
    assert!(AppliedRelease::advance(Some(&running), &theirs, 0).is_err());
    assert_eq!(log.next_after("app", Some(&running)), None);
    let void = running.voided();
    let replacement = log.next_after("app", Some(&void)).unwrap();
    assert_eq!(replacement.release.version, 2);
    assert_ne!(replacement.release.digest(), void.digest);
    let moved = AppliedRelease::advance(Some(&void), replacement, 0).unwrap();
    assert!(!moved.void);
    // Void or not, nothing older and not the void release itself.
    assert!(AppliedRelease::advance(Some(&void), log.next("app", Some(0)).unwrap(), 0).is_err());
    assert!(AppliedRelease::advance(Some(&void), &ours, 0).is_err());
}

/// A small deterministic generator for delivery orders, seeded by proptest.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `items` shuffled, with some duplicated, cut into batches.
    fn deliveries<T: Clone>(&mut self, items: &[T]) -> Vec<Vec<T>> {
        let mut all: Vec<T> = items.to_vec();
        for _ in 0..items.len() / 3 {
            all.push(items[self.below(items.len())].clone());
        }
        for index in (1..all.len()).rev() {
            all.swap(index, self.below(index + 1));
        }
        let mut batches = Vec::new();
        while !all.is_empty() {
            let size = 1 + self.below(all.len().min(8));
            batches.push(all.drain(..size).collect());
        }
        batches
    }
}

#[derive(Clone, Debug)]
enum Op {
    Edit { author: usize, key: u8, value: i64 },
    Sync { author: usize },
    Unauthorized { key: u8, value: i64 },
    BadSignature { key: u8, value: i64 },
    Equivocate,
    Malformed,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..2usize, 0..4u8, 0..5i64).prop_map(|(author, key, value)| Op::Edit { author, key, value }),
        3 => (0..2usize).prop_map(|author| Op::Sync { author }),
        1 => (0..4u8, 0..5i64).prop_map(|(key, value)| Op::Unauthorized { key, value }),
        1 => (0..4u8, 0..5i64).prop_map(|(key, value)| Op::BadSignature { key, value }),
        1 => Just(Op::Equivocate),
        1 => Just(Op::Malformed),
    ]
}

/// The changes a run of `ops` produces: valid ones and ones no replica may
/// apply, and whether key 101 equivocated or signed a change automerge
/// cannot apply (either convicts it).
struct Scenario {
    good: Vec<ConfigEntry>,
    bad: Vec<ConfigEntry>,
    convicted: bool,
}

fn play(ops: &[Op], ctx: &Ctx<'_>) -> Scenario {
    let authors = [key(100), key(101)];
    let mut stores = [ConfigStore::new(), ConfigStore::new()];
    let mut scenario = Scenario {
        good: Vec::new(),
        bad: Vec::new(),
        convicted: false,
    };
    for op in ops {
        match *op {
            Op::Edit { author, key, value } => {
                let Value::Map(mut content) = current(&stores[author], "app") else {
                    unreachable!()
                };
                content.insert(format!("k{key}"), Value::Int(value));
                if let Ok(Some(change)) =
                    stores[author].author("app", &authors[author], 1, &Value::Map(content), ctx)
                {
                    scenario.good.push(ConfigEntry::Change(change));
                }
            }
            Op::Sync { author } => {
                stores[author].merge_batch(scenario.good.clone(), ctx);
            }
            Op::Unauthorized { key: k, value } => {
                let change = raw_change(&key(50), &format!("k{k}"), value);
                scenario.bad.push(ConfigEntry::Change(change));
            }
            Op::BadSignature { key: k, value } => {
                let mut change = raw_change(&key(102), &format!("k{k}"), value);
                change.signature = key(102).sign_digest(&Digest::of("x", &value));
                scenario.bad.push(ConfigEntry::Change(change));
            }
            Op::Equivocate if !scenario.convicted => {
                let (one, two) = equivocate(&stores[1], &authors[1], ctx);
                scenario.good.push(ConfigEntry::Change(one));
                scenario.good.push(ConfigEntry::Change(two));
                scenario.convicted = true;
            }
            Op::Equivocate => {}
            Op::Malformed => {
                let bytes = hostile::apply_panic(&authors[1].public());
                let change = SignedChange::sign("boom", 1, &authors[1], bytes).unwrap();
                scenario.good.push(ConfigEntry::Change(change));
                scenario.convicted = true;
            }
        }
    }
    scenario
}

fn change_keys(entries: &[ConfigEntry]) -> BTreeSet<Digest> {
    entries
        .iter()
        .filter_map(|entry| match entry {
            ConfigEntry::Change(change) => change.key(),
            ConfigEntry::Evidence(_) | ConfigEntry::Malformed(_) => None,
        })
        .collect()
}

fn sorted_versions(replica: &impl Replica) -> Vec<(Digest, Digest)> {
    let mut versions = replica.versions();
    versions.sort();
    versions
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn config_replicas_converge_whatever_the_order(
        ops in prop::collection::vec(op(), 1..24),
        seeds in prop::collection::vec(any::<u64>(), 3),
    ) {
        let trust = chain();
        let ctx = ctx(&trust);
        let scenario = play(&ops, &ctx);
        let mut all = scenario.good.clone();
        all.extend(scenario.bad.iter().cloned());
        let bad = change_keys(&scenario.bad);
        let mut replicas = Vec::new();
        for seed in seeds {
            let mut replica = ConfigStore::new();
            for batch in Mix(seed).deliveries(&all) {
                replica.merge_batch(batch, &ctx);
            }
            replicas.push(replica);
        }
        // A key that forked three ways, or also signed a malformed change,
        // may be caught on different proofs; anti-entropy spreads the
        // evidence and the lowest key wins.
        let evidence: Vec<ConfigEntry> = replicas
            .iter()
            .flat_map(|replica| replica.versions().into_iter().filter_map(|(key, _)| replica.entry(&key)))
            .filter(|entry| matches!(entry, ConfigEntry::Evidence(_) | ConfigEntry::Malformed(_)))
            .collect();
        let mut outcomes = Vec::new();
        for mut replica in replicas {
            replica.merge_batch(evidence.clone(), &ctx);
            let versions = sorted_versions(&replica);
            prop_assert!(versions.iter().all(|(key, _)| !bad.contains(key)));
            let quarantined: Vec<PublicKey> = replica.quarantined().copied().collect();
            if scenario.convicted {
                prop_assert_eq!(&quarantined, &vec![key(101).public()]);
            } else {
                prop_assert!(quarantined.is_empty());
                prop_assert_eq!(versions.len(), scenario.good.len());
                prop_assert_eq!(replica.pending_len(), 0);
            }
            outcomes.push((versions, replica.value_at("app", &replica.heads("app"))));
        }
        prop_assert!(outcomes.windows(2).all(|pair| pair[0] == pair[1]));
    }

    #[test]
    fn revocation_mid_stream_converges(
        ops in prop::collection::vec(op(), 1..24),
        seeds in prop::collection::vec(any::<u64>(), 3),
    ) {
        let scenario = play(&ops, &ctx(&chain()));
        let revoked = key(101).public();
        let mut outcomes = Vec::new();
        for seed in seeds {
            let mut mix = Mix(seed);
            let mut trust = chain();
            let mut replica = ConfigStore::new();
            let batches = mix.deliveries(&scenario.good);
            let revoke_at = mix.below(batches.len() + 1);
            for (index, batch) in batches.into_iter().enumerate() {
                if index == revoke_at {
                    trust.insert(signed_trust(2, &[revoked]), &Ed25519).unwrap();
                    replica.trust_changed(&ctx(&trust));
                }
                replica.merge_batch(batch, &ctx(&trust));
            }
            if trust.head().doc.version == 1 {
                trust.insert(signed_trust(2, &[revoked]), &Ed25519).unwrap();
                replica.trust_changed(&ctx(&trust));
            }
            let versions = sorted_versions(&replica);
            for (key, _) in &versions {
                if let Some(ConfigEntry::Change(change)) = replica.entry(key) {
                    prop_assert_ne!(change.author, revoked);
                }
            }
            outcomes.push((versions, replica.value_at("app", &replica.heads("app"))));
        }
        prop_assert!(outcomes.windows(2).all(|pair| pair[0] == pair[1]));
    }

    #[test]
    fn release_logs_converge_and_agents_never_roll_back(
        picks in prop::collection::vec((1..6u64, 0..2u8, 0..7usize), 1..16),
        seeds in prop::collection::vec(any::<u64>(), 3),
    ) {
        let trust = chain();
        let ctx = ctx(&trust);
        let signer_sets: [&[u8]; 7] = [
            &[100, 101], &[100, 102], &[101, 102], &[100, 101, 102],
            &[100], &[100, 50], &[101, 102],
        ];
        let mut bad = Vec::new();
        let copies: Vec<SignedRelease> = picks
            .iter()
            .map(|&(version, variant, set)| {
                let mut copy = release(version, signer_sets[set]);
                copy.release.heads = vec![Digest([variant; 32])];
                let mut copy = SignedRelease::new(copy.release);
                for signer in signer_sets[set] {
                    copy.sign(&key(*signer));
                }
                if set == 6 {
                    copy.signatures.insert(key(100).public(), key(100).sign_digest(&Digest::default()));
                }
                if set >= 4 {
                    bad.push(copy.clone());
                }
                copy
            })
            .collect();
        let mut outcomes = Vec::new();
        for seed in seeds {
            let mut log = ReleaseLog::new();
            let mut applied: Option<AppliedRelease> = None;
            for batch in Mix(seed).deliveries(&copies) {
                for copy in batch {
                    let result = log.merge(copy.clone(), &ctx);
                    if bad.contains(&copy) {
                        prop_assert!(result.is_err());
                    }
                }
                while let Some(next) = log.next("app", applied.as_ref().map(|held| held.version)) {
                    let moved = AppliedRelease::advance(applied.as_ref(), next, 0);
                    prop_assert!(moved.is_ok());
                    applied = moved.ok();
                }
            }
            for (held_key, _) in log.versions() {
                let held = log.entry(&held_key).unwrap();
                prop_assert!(held.signatures.keys().all(|signer| *signer != key(50).public()));
            }
            outcomes.push(sorted_versions(&log));
        }
        prop_assert!(outcomes.windows(2).all(|pair| pair[0] == pair[1]));
    }
}
