//! The command line and the extension assert alike: `biomed-ner --assertion` on the notes of the
//! SQL test `assertion` (bundled model) gives, note by note, the assertions that
//! `biomed_ner.assertion = on` gave in PostgreSQL, as that test's expected output records them
//! (pg_regress fails when the server's output differs from that file).

#![cfg(feature = "bundled-model")]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

#[test]
fn assertion_in_the_cli_equals_assertion_in_sql() {
    let regress = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/pg_regress");
    let sql = std::fs::read_to_string(regress.join("sql/assertion.sql")).unwrap();
    let expected = std::fs::read_to_string(regress.join("expected/assertion.out")).unwrap();
    // The notes: the rows of the test's INSERT INTO notes, `(id, 'text')`.
    let insert = &sql[sql.find("INSERT INTO notes VALUES").expect("the notes of the SQL test")..];
    let insert = &insert[..insert.find(";\n").unwrap()];
    let notes: Vec<(u32, String)> = insert
        .split("),")
        .filter_map(|row| {
            let row = row.trim_start_matches(|c: char| !c.is_ascii_digit());
            let (id, rest) = row.split_once(", '")?;
            Some((id.parse().ok()?, rest[..rest.rfind('\'')?].replace("''", "'")))
        })
        .collect();
    assert_eq!(notes.len(), 4, "{notes:?}");
    let input: String = notes.iter().map(|(_, t)| serde_json::json!({"text": t}).to_string() + "\n").collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_biomed-ner"))
        .args(["--assertion", "--threads", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut compared = 0;
    for ((id, text), entities) in notes.iter().zip(&lines) {
        let entities = entities.as_array().unwrap();
        if entities.is_empty() {
            continue;
        }
        let list: Vec<&str> = entities.iter().map(|e| e["assertion"].as_str().unwrap()).collect();
        // psql's unaligned output of `id, assertions(e), same_as_assert`.
        let row = format!("\n{id}|{{{}}}|t\n", list.join(","));
        assert!(expected.contains(&row), "note {id} ({text:?}): the CLI gives {row:?}, not in assertion.out");
        compared += 1;
    }
    assert!(compared >= 3, "only {compared} notes compared");
}
