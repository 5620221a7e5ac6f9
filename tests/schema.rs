//! Schemas: which pattern applies to a key, and validation on every write path.

mod common;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use valkeyrie::{
    Error, ImportOptions, Issue, Key, Kv, KvBuilder, KvU64, OnError, Value, key, pattern,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u32,
    name: String,
    email: String,
}

fn user(id: u32, name: &str) -> User {
    User {
        id,
        name: name.into(),
        email: format!("{name}@example.com"),
    }
}

/// Every issue of a user: empty name, and an email without `@`.
fn check_user(u: &User) -> Result<(), Vec<Issue>> {
    let mut issues = Vec::new();
    if u.name.is_empty() {
        issues.push(Issue::new("name is empty").at("name"));
    }
    if !u.email.contains('@') {
        issues.push(Issue::new("email has no @").at("email"));
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(issues)
    }
}

fn users_db() -> Result<Kv, Error> {
    Kv::builder()
        .schema::<User>(pattern!["users", _], check_user)
        .sweep_interval(None)
        .open_in_memory()
}

fn assert_validation(result: Result<impl std::fmt::Debug, Error>, k: &Key, texts: &[&str]) {
    match result {
        Err(
            ref err @ Error::Validation {
                ref key,
                ref issues,
            },
        ) => {
            assert_eq!(key, k);
            let message = err.to_string();
            for text in texts {
                assert!(
                    issues.iter().any(|i| i.message.contains(text)),
                    "{text:?} not in {issues:?}"
                );
                assert!(message.contains(text), "{text:?} not in {message:?}");
            }
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn every_write_path_validates_and_writes_nothing_on_failure() -> TestResult {
    let db = users_db()?;
    let bad = user(1, "");
    let k = key!["users", 1];
    assert_validation(db.set(&k, &bad), &k, &["name is empty"]);
    assert_validation(
        db.set_expiring(&k, &bad, Duration::from_secs(60)),
        &k,
        &["name is empty"],
    );
    assert_validation(db.atomic().set(&k, &bad).commit(), &k, &["name is empty"]);
    assert_validation(
        db.atomic()
            .set_expiring(&k, &bad, Duration::from_secs(1))
            .commit(),
        &k,
        &["name is empty"],
    );
    // Raw bytes are a write of a value too: they do not decode as a User.
    assert_validation(db.set_bytes(&k, b"raw"), &k, &["User"]);
    let imported = db.import(
        vec![bad.clone()],
        ImportOptions::new(key!["users"], |u: &User| u.id.into()),
    );
    assert_validation(imported, &k, &["name is empty"]);
    assert!(db.get_bytes(&k)?.is_none());
    assert_eq!(db.stats()?.entries, 0);

    db.set(&k, &user(1, "ada"))?;
    assert_eq!(db.get::<User>(&k)?.ok_or("user")?.value, user(1, "ada"));
    Ok(())
}

#[test]
fn an_atomic_with_one_invalid_set_writes_nothing() -> TestResult {
    let db = users_db()?;
    let before = db.set(&key!["users", 9], &user(9, "old"))?;
    let result = db
        .atomic()
        .set(&key!["users", 1], &user(1, "ada"))
        .sum(&key!["count"], 1)
        .delete(&key!["users", 9])
        .set(&key!["users", 2], &user(2, ""))
        .set(&key!["users", 3], &user(3, "grace"))
        .commit();
    assert_validation(result, &key!["users", 2], &["name is empty"]);
    assert!(db.get::<User>(&key!["users", 1])?.is_none());
    assert!(db.get::<User>(&key!["users", 3])?.is_none());
    assert!(db.get::<KvU64>(&key!["count"])?.is_none());
    let kept = db.get::<User>(&key!["users", 9])?.ok_or("kept")?;
    assert_eq!(kept.versionstamp, before);
    Ok(())
}

#[test]
fn the_error_carries_every_issue_with_its_path() -> TestResult {
    let db = users_db()?;
    let bad = User {
        id: 1,
        name: String::new(),
        email: "nowhere".into(),
    };
    let err = db.set(&key!["users", 1], &bad).unwrap_err();
    let message = err.to_string();
    let Error::Validation { issues, .. } = err else {
        panic!("{message}");
    };
    assert_eq!(issues.len(), 2);
    assert_eq!(issues[0].path, ["name"]);
    assert_eq!(issues[1].path, ["email"]);
    assert!(message.contains("name is empty") && message.contains("email has no @"));
    assert!(message.contains(r#"["users", 1]"#), "{message}");
    Ok(())
}

#[test]
fn a_value_of_another_type_fails_validation() -> TestResult {
    let db = users_db()?;
    let k = key!["users", "x"];
    assert_validation(db.set(&k, "just a string"), &k, &["User"]);
    assert_validation(db.set(&k, &KvU64(1)), &k, &["User"]);
    Ok(())
}

#[test]
fn keys_matching_no_pattern_are_not_checked() -> TestResult {
    let db = users_db()?;
    db.set(&key!["users"], "not a user")?;
    db.set(&key!["users", 1, "extra"], &42)?;
    db.set(&key!["people", 1], &user(1, ""))?;
    db.set(&key![b"users".as_slice(), 1], &0)?;
    Ok(())
}

#[test]
fn counters_and_deletes_are_not_validated() -> TestResult {
    let db = Kv::builder()
        .schema::<String>(pattern!["n"], |_| Err(vec![Issue::new("never")]))
        .open_in_memory()?;
    assert!(db.atomic().sum(&key!["n"], 1).commit()?.is_committed());
    assert!(db.atomic().max(&key!["n"], 5).commit()?.is_committed());
    db.delete(&key!["n"])?;
    Ok(())
}

/// A builder whose schemas each reject with their own name, to see which one applied.
fn tagging(builder: KvBuilder, name: &'static str, p: valkeyrie::Pattern) -> KvBuilder {
    builder.schema::<Value>(p, move |_| Err(vec![Issue::new(name)]))
}

fn applied(db: &Kv, k: &Key) -> Option<String> {
    match db.set(k, &0) {
        Err(Error::Validation { issues, .. }) => Some(issues[0].message.clone()),
        _ => None,
    }
}

#[test]
fn exact_patterns_win_over_wildcards_whatever_the_order() -> TestResult {
    let b = tagging(Kv::builder(), "wild", pattern!["u", _]);
    let b = tagging(b, "exact", pattern!["u", "x"]);
    let db = b.open_in_memory()?;
    assert_eq!(applied(&db, &key!["u", "x"]).as_deref(), Some("exact"));
    assert_eq!(applied(&db, &key!["u", "y"]).as_deref(), Some("wild"));
    Ok(())
}

#[test]
fn among_wildcards_the_first_registered_wins() -> TestResult {
    let b = tagging(Kv::builder(), "first", pattern!["u", _]);
    let b = tagging(b, "second", pattern![_, "x"]);
    let b = tagging(b, "any", pattern![_, _]);
    let db = b.open_in_memory()?;
    assert_eq!(applied(&db, &key!["u", "x"]).as_deref(), Some("first"));
    assert_eq!(applied(&db, &key!["v", "x"]).as_deref(), Some("second"));
    assert_eq!(applied(&db, &key!["v", 1]).as_deref(), Some("any"));
    assert_eq!(applied(&db, &key!["v"]), None);
    // Parts match by type and value: Int(1) is not Float(1.0).
    let db = tagging(Kv::builder(), "int", pattern!["n", 1]).open_in_memory()?;
    assert_eq!(applied(&db, &key!["n", 1]).as_deref(), Some("int"));
    assert_eq!(applied(&db, &key!["n", 1.0]), None);
    Ok(())
}

#[test]
fn registering_a_pattern_twice_fails_at_open() {
    let twice = || {
        let b = tagging(Kv::builder(), "a", pattern!["users", _]);
        tagging(b, "b", pattern!["users", _])
    };
    let err = twice().open_in_memory().unwrap_err();
    assert!(
        matches!(&err, Error::InvalidOption(m) if m.contains(r#"["users", _]"#)),
        "{err}"
    );
    let (_dir, path) = common::temp_path();
    assert!(matches!(twice().open(&path), Err(Error::InvalidOption(_))));
    assert!(!path.exists(), "a failed open must not create the file");
}

#[test]
fn import_in_continue_mode_reports_invalid_items_one_by_one() -> TestResult {
    let db = users_db()?;
    let items = vec![user(1, "a"), user(2, ""), user(3, "c"), user(4, "")];
    let report = db.import(
        items,
        ImportOptions::new(key!["users"], |u: &User| u.id.into()).on_error(OnError::Continue),
    )?;
    assert_eq!(report.imported, 2);
    let failed: Vec<usize> = report.failed.iter().map(|(i, _)| *i).collect();
    assert_eq!(failed, [1, 3]);
    assert!(matches!(report.failed[0].1, Error::Validation { .. }));
    assert!(db.get::<User>(&key!["users", 1])?.is_some());
    assert!(db.get::<User>(&key!["users", 3])?.is_some());
    Ok(())
}

#[cfg(feature = "garde")]
mod garde_schemas {
    use garde::Validate;

    use super::*;

    #[derive(Debug, Serialize, Deserialize, Validate)]
    struct Account {
        #[garde(length(min = 1))]
        name: String,
        #[garde(range(max = 150))]
        age: u8,
        #[garde(dive)]
        tags: Vec<Tag>,
    }

    #[derive(Debug, Serialize, Deserialize, Validate)]
    struct Tag {
        #[garde(length(max = 3))]
        label: String,
    }

    #[test]
    fn a_garde_type_validates_with_no_closure() -> TestResult {
        let db = Kv::builder()
            .schema_garde::<Account>(pattern!["accounts", _])
            .open_in_memory()?;
        let ok = Account {
            name: "ada".into(),
            age: 36,
            tags: vec![Tag { label: "x".into() }],
        };
        db.set(&key!["accounts", 1], &ok)?;
        let bad = Account {
            name: String::new(),
            age: 200,
            tags: vec![
                Tag { label: "x".into() },
                Tag {
                    label: "long".into(),
                },
            ],
        };
        let err = db.set(&key!["accounts", 2], &bad).unwrap_err();
        let Error::Validation { issues, .. } = err else {
            panic!("{err}");
        };
        let mut paths: Vec<Vec<String>> = issues.iter().map(|i| i.path.clone()).collect();
        paths.sort();
        assert_eq!(
            paths,
            [vec!["age"], vec!["name"], vec!["tags", "1", "label"]]
        );
        assert!(db.get::<Value>(&key!["accounts", 2])?.is_none());
        Ok(())
    }
}
