//! Relationship-based access control: tuples, a small fixed schema, and the permission check.
//!
//! A tuple says `object#relation@subject`, for example
//!
//! ```text
//! group:builders#member@user:alice         alice is a member of builders
//! zone:8f0c…#joiner@group:builders#member  members of builders may join the zone
//! map:plaza#uploader@group:builders#member members of builders may upload the map
//! zone:8f0c…#joiner@user:*                 anyone may join (public zone)
//! ```
//!
//! A permission on an object is granted by one or more relations ([`Schema`]); a subject is a
//! user, the wildcard `user:*`, or a userset `kind:id#relation` that is expanded recursively.
//! The check is a breadth-first walk with a visited set (cycles terminate) and a node budget.
//! Tuples come from a [`TupleSource`], so the backend can answer from SQLite and a zone from
//! an in-memory copy; nothing here does IO.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::fmt;
use std::str::FromStr;

/// Longest object kind, id or relation accepted.
pub const MAX_NAME_LEN: usize = 128;
/// Most (object, relation) nodes one check may visit before giving up.
pub const MAX_CHECK_NODES: usize = 4096;

/// Errors parsing or validating tuples, and failures of a check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RebacError {
    /// Text is not `kind:id`, `kind:id#relation` or `user:*`, or a part is empty, too long or
    /// has a forbidden character.
    #[error("malformed {what}: {text:?}")]
    Malformed {
        /// What was being parsed (`object`, `subject`, `relation`).
        what: &'static str,
        /// The offending text (truncated).
        text: String,
    },
    /// The object kind is not in the schema.
    #[error("unknown object kind {0:?}")]
    UnknownKind(String),
    /// The relation is not defined for that object kind.
    #[error("relation {relation:?} is not defined on {kind:?}")]
    UnknownRelation {
        /// Object kind.
        kind: String,
        /// Relation name.
        relation: String,
    },
    /// The check visited more than [`MAX_CHECK_NODES`] nodes.
    #[error("relationship graph too large to check")]
    TooDeep,
    /// The tuple source failed (database error); the message is the source's.
    #[error("tuple source failed: {0}")]
    Source(String),
}

impl RebacError {
    /// Stable error code for JSON error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            RebacError::Malformed { .. } => "malformed_tuple",
            RebacError::UnknownKind(_) => "unknown_object_kind",
            RebacError::UnknownRelation { .. } => "unknown_relation",
            RebacError::TooDeep => "check_too_deep",
            RebacError::Source(_) => "internal",
        }
    }
}

fn valid_name(s: &str, allow_colon: bool) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'_' | b'-' | b'.' | b'@')
                || (allow_colon && b == b':')
        })
}

fn malformed(what: &'static str, text: &str) -> RebacError {
    RebacError::Malformed {
        what,
        text: text.chars().take(64).collect(),
    }
}

/// An object `kind:id`, e.g. `zone:8f0c…`, `group:builders`, `user:alice`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// Object kind (`zone`, `group`, `map`, `user`).
    pub kind: String,
    /// Object id within its kind.
    pub id: String,
}

impl ObjectRef {
    /// Builds an object reference (unvalidated; use `parse` for untrusted text).
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            id: id.into(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

impl FromStr for ObjectRef {
    type Err = RebacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, id) = s.split_once(':').ok_or_else(|| malformed("object", s))?;
        if !valid_name(kind, false) || !valid_name(id, true) {
            return Err(malformed("object", s));
        }
        Ok(Self::new(kind, id))
    }
}

/// The subject of a tuple.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// One user, `user:<id>`.
    User(String),
    /// Every user, `user:*`.
    AnyUser,
    /// Everyone holding `relation` on `object`, `kind:id#relation`.
    Userset {
        /// The object whose relation is expanded.
        object: ObjectRef,
        /// The relation (or permission) on it.
        relation: String,
    },
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::User(id) => write!(f, "user:{id}"),
            Subject::AnyUser => f.write_str("user:*"),
            Subject::Userset { object, relation } => write!(f, "{object}#{relation}"),
        }
    }
}

impl FromStr for Subject {
    type Err = RebacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "user:*" {
            return Ok(Subject::AnyUser);
        }
        if let Some((obj, relation)) = s.split_once('#') {
            let object: ObjectRef = obj.parse().map_err(|_| malformed("subject", s))?;
            if !valid_name(relation, false) {
                return Err(malformed("subject", s));
            }
            return Ok(Subject::Userset {
                object,
                relation: relation.to_owned(),
            });
        }
        let object: ObjectRef = s.parse().map_err(|_| malformed("subject", s))?;
        if object.kind != "user" {
            return Err(malformed("subject", s));
        }
        Ok(Subject::User(object.id))
    }
}

/// A relationship tuple `object#relation@subject`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tuple {
    /// The object the relation is on.
    pub object: ObjectRef,
    /// The relation name.
    pub relation: String,
    /// Who holds it.
    pub subject: Subject,
}

impl Tuple {
    /// Parses the three parts of a tuple from untrusted text.
    pub fn parse(object: &str, relation: &str, subject: &str) -> Result<Self, RebacError> {
        if !valid_name(relation, false) {
            return Err(malformed("relation", relation));
        }
        Ok(Self {
            object: object.parse()?,
            relation: relation.to_owned(),
            subject: subject.parse()?,
        })
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}@{}", self.object, self.relation, self.subject)
    }
}

/// Which relations exist on each object kind and which relations grant each permission.
#[derive(Debug, Clone)]
pub struct Schema {
    /// `(kind, relation or permission, granting relations)`.
    rules: Vec<(&'static str, &'static str, &'static [&'static str])>,
    /// `(kind, stored relations)`.
    relations: Vec<(&'static str, &'static [&'static str])>,
}

impl Default for Schema {
    /// The fabric schema:
    ///
    /// | kind | stored relations | permissions |
    /// |---|---|---|
    /// | `zone` | `owner`, `joiner` | `join` = joiner ∪ owner; `admin` = owner |
    /// | `map` | `owner`, `uploader`, `placer` | `upload` = uploader ∪ owner; `place` = placer ∪ uploader ∪ owner; `admin` = owner |
    /// | `group` | `owner`, `member` | `member` = member; `admin` = owner |
    /// | `room` | `owner`, `editor`, `viewer` | `save` = editor ∪ owner; `load` = viewer ∪ editor ∪ owner; `admin` = owner |
    fn default() -> Self {
        Self {
            rules: vec![
                ("zone", "join", &["joiner", "owner"]),
                ("zone", "admin", &["owner"]),
                ("map", "upload", &["uploader", "owner"]),
                ("map", "place", &["placer", "uploader", "owner"]),
                ("map", "admin", &["owner"]),
                ("group", "admin", &["owner"]),
                ("room", "save", &["editor", "owner"]),
                ("room", "load", &["viewer", "editor", "owner"]),
                ("room", "admin", &["owner"]),
            ],
            relations: vec![
                ("zone", &["owner", "joiner"]),
                ("map", &["owner", "uploader", "placer"]),
                ("group", &["owner", "member"]),
                ("room", &["owner", "editor", "viewer"]),
            ],
        }
    }
}

impl Schema {
    /// Relations that grant `permission` on `kind`. A stored relation grants itself.
    pub fn granting(&self, kind: &str, permission: &str) -> Vec<&'static str> {
        if let Some((_, _, rels)) = self
            .rules
            .iter()
            .find(|(k, p, _)| *k == kind && *p == permission)
        {
            return rels.to_vec();
        }
        self.relations
            .iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, rels)| rels.iter().find(|r| **r == permission).copied())
            .into_iter()
            .collect()
    }

    /// Checks that a tuple may be stored: known kind, stored relation, and a userset subject that
    /// names a relation or permission of its kind.
    pub fn validate(&self, tuple: &Tuple) -> Result<(), RebacError> {
        let rels = self
            .relations
            .iter()
            .find(|(k, _)| *k == tuple.object.kind)
            .map(|(_, r)| *r)
            .ok_or_else(|| RebacError::UnknownKind(tuple.object.kind.clone()))?;
        if !rels.contains(&tuple.relation.as_str()) {
            return Err(RebacError::UnknownRelation {
                kind: tuple.object.kind.clone(),
                relation: tuple.relation.clone(),
            });
        }
        if let Subject::Userset { object, relation } = &tuple.subject {
            if !self.relations.iter().any(|(k, _)| *k == object.kind) {
                return Err(RebacError::UnknownKind(object.kind.clone()));
            }
            if self.granting(&object.kind, relation).is_empty() {
                return Err(RebacError::UnknownRelation {
                    kind: object.kind.clone(),
                    relation: relation.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Where tuples come from. The backend implements it over its store; [`MemoryTuples`] over a set.
pub trait TupleSource {
    /// Subjects holding `relation` on `object` (direct tuples only).
    fn subjects(&self, object: &ObjectRef, relation: &str) -> Result<Vec<Subject>, RebacError>;

    /// Objects that have a tuple whose subject is a userset on `object` (any relation): the
    /// objects whose permissions may change when `object`'s tuples change.
    fn referencing(&self, object: &ObjectRef) -> Result<Vec<ObjectRef>, RebacError>;
}

/// Does `user` hold `permission` on `object`?
pub fn check(
    schema: &Schema,
    source: &impl TupleSource,
    user: &str,
    permission: &str,
    object: &ObjectRef,
) -> Result<bool, RebacError> {
    let mut queue: VecDeque<(ObjectRef, &'static str)> = VecDeque::new();
    let mut seen: HashSet<(ObjectRef, &'static str)> = HashSet::new();
    for rel in schema.granting(&object.kind, permission) {
        if seen.insert((object.clone(), rel)) {
            queue.push_back((object.clone(), rel));
        }
    }
    while let Some((obj, rel)) = queue.pop_front() {
        for subject in source.subjects(&obj, rel)? {
            match subject {
                Subject::User(id) if id == user => return Ok(true),
                Subject::AnyUser => return Ok(true),
                Subject::User(_) => {}
                Subject::Userset { object, relation } => {
                    for r in schema.granting(&object.kind, &relation) {
                        let node = (object.clone(), r);
                        if !seen.contains(&node) {
                            if seen.len() >= MAX_CHECK_NODES {
                                return Err(RebacError::TooDeep);
                            }
                            seen.insert(node.clone());
                            queue.push_back(node);
                        }
                    }
                }
            }
        }
    }
    Ok(false)
}

/// Every object whose permissions can depend on `object`'s tuples, `object` included: follows
/// [`TupleSource::referencing`] transitively (cycle-safe, bounded by [`MAX_CHECK_NODES`]).
/// The backend uses it to find which `zone:<id>` topics get a `relationship_changed` push.
pub fn dependents(
    source: &impl TupleSource,
    object: &ObjectRef,
) -> Result<BTreeSet<ObjectRef>, RebacError> {
    let mut seen = BTreeSet::from([object.clone()]);
    let mut queue = VecDeque::from([object.clone()]);
    while let Some(obj) = queue.pop_front() {
        for next in source.referencing(&obj)? {
            if !seen.contains(&next) {
                if seen.len() >= MAX_CHECK_NODES {
                    return Err(RebacError::TooDeep);
                }
                seen.insert(next.clone());
                queue.push_back(next);
            }
        }
    }
    Ok(seen)
}

/// An in-memory tuple set: for tests, and for a zone that mirrors the tuples it needs.
#[derive(Debug, Clone, Default)]
pub struct MemoryTuples {
    tuples: BTreeSet<Tuple>,
}

impl MemoryTuples {
    /// Adds a tuple; returns false if it was already present.
    pub fn insert(&mut self, tuple: Tuple) -> bool {
        self.tuples.insert(tuple)
    }

    /// Removes a tuple; returns false if it was absent.
    pub fn remove(&mut self, tuple: &Tuple) -> bool {
        self.tuples.remove(tuple)
    }

    /// Number of tuples.
    pub fn len(&self) -> usize {
        self.tuples.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.tuples.is_empty()
    }
}

impl TupleSource for MemoryTuples {
    fn subjects(&self, object: &ObjectRef, relation: &str) -> Result<Vec<Subject>, RebacError> {
        Ok(self
            .tuples
            .iter()
            .filter(|t| &t.object == object && t.relation == relation)
            .map(|t| t.subject.clone())
            .collect())
    }

    fn referencing(&self, object: &ObjectRef) -> Result<Vec<ObjectRef>, RebacError> {
        Ok(self
            .tuples
            .iter()
            .filter(|t| matches!(&t.subject, Subject::Userset { object: o, .. } if o == object))
            .map(|t| t.object.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(object: &str, relation: &str, subject: &str) -> Tuple {
        Tuple::parse(object, relation, subject).expect("valid test tuple")
    }

    fn world() -> MemoryTuples {
        let mut m = MemoryTuples::default();
        for tuple in [
            t("group:builders", "member", "user:alice"),
            t("group:staff", "member", "group:builders#member"),
            t("zone:z1", "joiner", "group:staff#member"),
            t("zone:z1", "owner", "user:olga"),
            t("map:plaza", "uploader", "group:builders#member"),
            t("zone:pub", "joiner", "user:*"),
            t("map:plaza", "placer", "user:pia"),
            t("map:plaza", "owner", "user:mo"),
        ] {
            let schema = Schema::default();
            schema.validate(&tuple).expect("schema accepts test tuple");
            m.insert(tuple);
        }
        m
    }

    #[test]
    fn place_is_granted_to_placers_uploaders_and_owners_only() {
        let s = Schema::default();
        let w = world();
        let plaza = ObjectRef::new("map", "plaza");
        for (user, may) in [("pia", true), ("alice", true), ("mo", true), ("bob", false)] {
            assert_eq!(
                check(&s, &w, user, "place", &plaza).unwrap(),
                may,
                "{user} place on map:plaza"
            );
        }
        assert!(
            !check(&s, &w, "pia", "upload", &plaza).unwrap(),
            "a placer may not upload"
        );
        assert!(
            s.validate(&t("map:plaza", "place", "user:pia")).is_err(),
            "place is a permission, not a stored relation"
        );
        assert!(
            s.validate(&t("zone:z1", "joiner", "map:plaza#place"))
                .is_ok(),
            "a userset may name the permission"
        );
    }

    #[test]
    fn nested_groups_grant_join_and_others_are_denied() {
        let s = Schema::default();
        let w = world();
        let z1 = ObjectRef::new("zone", "z1");
        assert!(
            check(&s, &w, "alice", "join", &z1).unwrap(),
            "alice via builders ⊂ staff"
        );
        assert!(
            check(&s, &w, "olga", "join", &z1).unwrap(),
            "owner may join"
        );
        assert!(
            !check(&s, &w, "bob", "join", &z1).unwrap(),
            "bob has no path"
        );
        assert!(
            !check(&s, &w, "alice", "admin", &z1).unwrap(),
            "alice is not owner"
        );
        assert!(
            check(&s, &w, "olga", "admin", &z1).unwrap(),
            "owner is admin"
        );
        let plaza = ObjectRef::new("map", "plaza");
        assert!(
            check(&s, &w, "alice", "upload", &plaza).unwrap(),
            "builder uploads"
        );
        assert!(
            !check(&s, &w, "olga", "upload", &plaza).unwrap(),
            "olga may not"
        );
        let public = ObjectRef::new("zone", "pub");
        assert!(
            check(&s, &w, "anyone", "join", &public).unwrap(),
            "wildcard"
        );
    }

    #[test]
    fn removing_a_tuple_revokes_and_cycles_terminate() {
        let s = Schema::default();
        let mut w = world();
        let z1 = ObjectRef::new("zone", "z1");
        assert!(w.remove(&t("group:builders", "member", "user:alice")));
        assert!(!check(&s, &w, "alice", "join", &z1).unwrap(), "revoked");
        w.insert(t("group:builders", "member", "group:staff#member"));
        assert!(
            !check(&s, &w, "alice", "join", &z1).unwrap(),
            "cycle builders <-> staff terminates with deny"
        );
    }

    #[test]
    fn dependents_follow_usersets_upwards() {
        let w = world();
        let deps = dependents(&w, &ObjectRef::new("group", "builders")).unwrap();
        let names: Vec<String> = deps.iter().map(|o| o.to_string()).collect();
        assert_eq!(
            names,
            vec!["group:builders", "group:staff", "map:plaza", "zone:z1"],
            "builders affects staff, the map and, through staff, zone z1"
        );
    }

    #[test]
    fn parsing_and_schema_validation_reject_bad_tuples() {
        let s = Schema::default();
        assert!(
            Tuple::parse("zone", "joiner", "user:a").is_err(),
            "no colon"
        );
        assert!(
            Tuple::parse("zone:z", "joiner", "bob").is_err(),
            "bare subject"
        );
        assert!(
            Tuple::parse("zone:z", "joiner", "group:g#").is_err(),
            "empty rel"
        );
        assert!(
            Tuple::parse("zone:z z", "joiner", "user:a").is_err(),
            "space"
        );
        assert!(
            Tuple::parse("zone:z", "join er", "user:a").is_err(),
            "rel space"
        );
        assert_eq!(
            s.validate(&t("planet:x", "owner", "user:a")),
            Err(RebacError::UnknownKind("planet".into()))
        );
        assert!(
            matches!(
                s.validate(&t("zone:z", "join", "user:a")),
                Err(RebacError::UnknownRelation { .. })
            ),
            "join is a permission, not a stored relation"
        );
        assert!(matches!(
            s.validate(&t("zone:z", "joiner", "group:g#nope")),
            Err(RebacError::UnknownRelation { .. })
        ));
        let round = t("zone:z1", "joiner", "group:g#member");
        assert_eq!(round.to_string(), "zone:z1#joiner@group:g#member");
        assert_eq!("user:*".parse::<Subject>().unwrap(), Subject::AnyUser);
    }
}
