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

const NOTES: &str = concat!(
    r#"{"text": "She denied fever.\nCough <script>alert(1)</script> for two days.", "entities": [{"start": 11, "end": 16, "entity_group": "Sign_symptom", "score": 0.9}, {"start": 18, "end": 23, "entity_group": "Sign_symptom"}, {"start": 11, "end": 14, "entity_group": "Other"}]}"#,
    "\n\n",
    r#"{"text": "Pneumonia could not be excluded.", "entities": [{"start": 0, "end": 9, "entity_group": "Disease_disorder"}]}"#,
    "\n"
);

/// The code-point slices that a page's `<mark>` elements cover, and their texts unescaped.
fn marks(page: &str) -> Vec<(usize, usize, String)> {
    page.split("<mark ")
        .skip(1)
        .map(|m| {
            let attr = |key: &str| -> usize {
                let at = m.find(&format!("{key}=\"")).unwrap() + key.len() + 2;
                m[at..at + m[at..].find('"').unwrap()].parse().unwrap()
            };
            let text = &m[m.find('>').unwrap() + 1..m.find("</mark>").unwrap()];
            (attr("data-start"), attr("data-end"), text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
        })
        .collect()
}

#[test]
fn render_writes_a_page_of_given_entities_without_loading_a_model() {
    // A model folder that does not exist: nothing needs it.
    let (ok, page, stderr) = cli(&["render", "--model", "/nonexistent/model", "--assertion"], NOTES);
    assert!(ok, "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>\n"));
    // The entity overlapping "fever" is left out, and said so.
    assert_eq!(marks(&page), [(11, 16, "fever".into()), (18, 23, "Cough".into()), (0, 9, "Pneumonia".into())]);
    assert!(page.contains("3 entities (1 entity not shown: empty or overlapping another)"), "{page}");
    assert!(page.contains("Cough</mark> &lt;script&gt;alert(1)&lt;/script&gt; for two days."));
    assert_eq!(page.matches("<script").count(), 1, "only the page's own script");
    assert!(page.contains("data-start=\"11\" data-end=\"16\" data-score=\"0.9000\" data-assertion=\"absent\""));
    assert!(page.contains("data-start=\"0\" data-end=\"9\" data-assertion=\"possible\""));
    let (ok, plain, _) = cli(&["render"], NOTES);
    assert!(ok && !plain.contains("data-assertion=\""), "{plain}");
}

#[test]
fn render_names_the_line_of_a_bad_input_and_writes_nothing() {
    for (bad, says) in [
        ("{\"text\": \"ok\", \"entities\": []}\nnot json\n", "line 2: not JSON"),
        ("\n{\"entities\": []}\n", "line 2: no \"text\" string"),
        ("{\"text\": \"abc\", \"entities\": [{\"start\": 1, \"end\": 7, \"entity_group\": \"A\"}]}", "line 1: entity 0: \"end\" 7 is past the end of the text (3 characters)"),
        ("{\"text\": \"abc\", \"entities\": [{\"start\": 0, \"end\": 1}]}", "line 1: entity 0 has no \"entity_group\""),
        ("{\"text\": \"abc\", \"entities\": 3}", "line 1: entities must be a JSON array, not a number"),
    ] {
        let (ok, stdout, stderr) = cli(&["render"], bad);
        assert!(!ok && stderr.contains(says), "{bad}: {stderr}");
        assert!(stdout.is_empty(), "{bad}: {stdout}");
    }
}

#[test]
fn render_runs_the_model_on_lines_without_entities_only() {
    let model = fixtures().join("models/deberta_spm");
    let model = model.to_str().unwrap();
    let text = "A 48-year-old female presented with vaginal bleeding and abnormal Pap smears.";
    let (ok, found, stderr) = cli(&["--model", model], &format!("{}\n", serde_json::json!({"text": text})));
    assert!(ok, "{stderr}");
    let found: Vec<Value> = serde_json::from_str(found.trim()).unwrap();
    assert!(!found.is_empty());
    let input = format!("{}\n{}", serde_json::json!({"text": text}), NOTES);
    let (ok, page, stderr) = cli(&["render", "--model", model], &input);
    assert!(ok, "{stderr}");
    let got = marks(&page);
    let chars: Vec<char> = text.chars().collect();
    let want: Vec<(usize, usize, String)> = found
        .iter()
        .map(|e| {
            let (s, t) = (e["start"].as_u64().unwrap() as usize, e["end"].as_u64().unwrap() as usize);
            (s, t, chars[s..t].iter().collect())
        })
        .collect();
    assert_eq!(got[..want.len()], want[..]);
    assert_eq!(got.len(), want.len() + 3, "the given entities kept");
}

#[test]
fn progress_goes_to_stderr_only_and_only_when_asked() {
    let model = fixtures().join("models/deberta_spm");
    let model = model.to_str().unwrap();
    let input: String = (0..5).map(|i| format!("{{\"text\": \"Note {i}: fever and cough.\"}}\n")).collect();
    let (ok, plain, stderr) = cli(&["--model", model], &input);
    assert!(ok && stderr.is_empty(), "not a terminal, no flag: {stderr}");
    let (ok, shown, stderr) = cli(&["--model", model, "--progress"], &input);
    assert!(ok, "{stderr}");
    assert_eq!(shown, plain, "stdout unchanged");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("5 notes,") && last.contains("notes/s"), "{stderr}");
    let (ok, quiet, stderr) = cli(&["--model", model, "--progress", "--quiet"], &input);
    assert!(ok && stderr.is_empty() && quiet == plain, "{stderr}");
    // With the number of notes known (render), the bar counts down to it.
    let (ok, page, stderr) = cli(&["render", "--model", model, "--progress"], &input);
    assert!(ok && page.starts_with("<!DOCTYPE html>"), "{stderr}");
    assert!(stderr.lines().last().unwrap_or_default().contains("5/5 notes"), "{stderr}");
    assert!(!page.contains("notes/s"));
}
