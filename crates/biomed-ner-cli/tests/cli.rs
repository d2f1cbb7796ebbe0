//! The command line on model folders without tokenizer.json: a DeBERTa-v3 fixture that ships
//! `spm.model` and an XLM-R fixture that ships `sentencepiece.bpe.model` give transformers'
//! token-classification pipeline's entities (tests/fixtures/make_spm_fixtures.py), and a folder
//! with no tokenizer file at all names every file it looked for; `--version` names the int8 kernel.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn run(model: &std::path::Path, input: &str) -> (bool, String, String) {
    cli(&["--model", model.to_str().unwrap(), "--max-length", "100000", "--threads", "1"], input)
}

#[test]
fn sentencepiece_folders_give_the_pipelines_entities() {
    for name in ["deberta_spm", "xlmr_spm"] {
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join("expected").join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        let cases = expected["cases"].as_array().unwrap();
        let input: String = cases.iter().map(|c| serde_json::json!({"text": c["text"]}).to_string() + "\n").collect();
        let (ok, stdout, stderr) = run(&fixtures().join("models").join(name), &input);
        assert!(ok, "{name}: {stderr}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), cases.len());
        let mut entities = 0;
        for (case, line) in cases.iter().zip(lines) {
            let text: Vec<char> = case["text"].as_str().unwrap().chars().collect();
            let got: Vec<Value> = serde_json::from_str(line).unwrap();
            // The pipeline's entities, less the engine's documented departures: start skips
            // leading whitespace, whitespace-only entities are dropped.
            let want: Vec<(String, usize, usize)> = case["entities"]["simple"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| {
                    let (s, end) = (e["start"].as_u64().unwrap() as usize, e["end"].as_u64().unwrap() as usize);
                    let s = (s..end).find(|&i| !text[i].is_whitespace())?;
                    Some((e["entity_group"].as_str().unwrap().to_string(), s, end))
                })
                .collect();
            let have: Vec<(String, usize, usize)> = got
                .iter()
                .map(|e| {
                    let (s, end) = (e["start"].as_u64().unwrap() as usize, e["end"].as_u64().unwrap() as usize);
                    assert_eq!(e["word"].as_str().unwrap(), text[s..end].iter().collect::<String>());
                    (e["entity_group"].as_str().unwrap().to_string(), s, end)
                })
                .collect();
            assert_eq!(have, want, "{name} on {:?}", case["text"]);
            entities += have.len();
        }
        assert!(entities > 50, "{name}: {entities} entities");
    }
}

#[test]
fn a_folder_without_a_tokenizer_names_every_file_it_looked_for() {
    let dir = std::env::temp_dir().join(format!("biomed-ner-cli-notok-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let src = fixtures().join("models/deberta_spm");
    for f in ["config.json", "model.safetensors", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let (ok, _, stderr) = run(&dir, "{\"text\": \"x\"}\n");
    assert!(!ok);
    assert!(stderr.contains("tokenizer.json, vocab.txt, spm.model or sentencepiece.bpe.model"), "{stderr}");
    // A damaged spm.model is a clear error.
    std::fs::write(dir.join("spm.model"), b"\x0a\xff\xff\xff").unwrap();
    let (ok, _, stderr) = run(&dir, "{\"text\": \"x\"}\n");
    assert!(!ok && stderr.contains("spm.model") && stderr.contains("not a SentencePiece model"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn cli(args: &[&str], input: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_biomed-ner"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails early exits before it reads: a closed pipe is no failure here.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn assertion_on_maccrobat_test_split_keeps_its_scores() {
    // The figures the README reports (gold event spans of the test split); a change to the
    // rules or the learned weights that lowers them fails here.
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/maccrobat");
    let (ok, stdout, stderr) = cli(
        &["eval", "--assertion", "--threads", "2", "--brat", data.to_str().unwrap(), "--split-file",
          data.join("SPLIT.tsv").to_str().unwrap(), "--split", "test"],
        "",
    );
    assert!(ok, "{stderr}");
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    let gold = &v["assertion"]["gold_spans"];
    assert!(gold["absent"]["f1"].as_f64().unwrap() >= 0.84, "{gold}");
    assert!(gold["possible"]["f1"].as_f64().unwrap() >= 0.42, "{gold}");
    assert!(gold["present"]["f1"].as_f64().unwrap() >= 0.965, "{gold}");
    assert_eq!(gold["absent"]["gold"], 125);
}

#[test]
fn assert_adds_the_key_and_refuses_bad_entities_by_line() {
    let input = concat!(
        r#"{"text": "She denied fever. Cough for two days.", "entities": [{"start": 11, "end": 16, "entity_group": "Sign_symptom"}, {"start": 18, "end": 23}]}"#,
        "\n",
        r#"{"text": "Pneumonia could not be excluded.", "entities": [{"start": 0, "end": 9, "entity_group": "Disease_disorder"}]}"#,
        "\n"
    );
    let (ok, stdout, stderr) = cli(&["assert"], input);
    assert!(ok, "{stderr}");
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0][0]["assertion"], "absent");
    assert_eq!(lines[0][1]["assertion"], "present");
    assert_eq!(lines[1][0]["assertion"], "possible");
    for (bad, says) in [
        (r#"{"text": "x", "entities": {"start": 0}}"#, "line 1: entities must be a JSON array"),
        (r#"{"text": "x", "entities": [{"start": 0, "end": 9}]}"#, "line 1: entity 0: \"end\" 9 is past the end"),
        (r#"{"entities": []}"#, "line 1: no \"text\""),
        ("not json", "line 1: not JSON"),
    ] {
        let (ok, _, stderr) = cli(&["assert"], bad);
        assert!(!ok && stderr.contains(says), "{bad}: {stderr}");
    }
}

#[test]
fn version_names_the_int8_kernel() {
    let out = Command::new(env!("CARGO_BIN_EXE_biomed-ner")).arg("--version").output().unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let kernels = v["cpu_kernels"].as_str().unwrap();
    assert!(["amx", "avx512-vnni", "avx2", "portable"].contains(&kernels), "{v}");
    let out = Command::new(env!("CARGO_BIN_EXE_biomed-ner")).arg("--version").env("DEBERTA_NER_INT8_KERNEL", "portable").output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cpu_kernels"], "portable");
    println!("cpu_kernels: {kernels}");
}
