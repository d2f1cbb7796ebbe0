//! A model name stays inside `biomed_ner.model_path`: its folder, and the folder and files the
//! engine would load from it (a hub cache's `refs/main`, its snapshots' links), with every link
//! resolved.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use biomed_ner_host::failure::SqlState;
use biomed_ner_host::model_path::find_in_roots;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/models/v3_base_like");

/// A fresh folder with `root/` (the model path) and `outside/` (a model the roles may not load).
fn setup(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!("biomed-ner-host-paths-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (root, outside) = (base.join("root"), base.join("outside"));
    copy_model(&outside);
    std::fs::create_dir_all(&root).unwrap();
    (base, root, outside)
}

fn copy_model(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(FIXTURE).unwrap().flatten() {
        std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
    }
}

/// A hub cache folder `models--org--NAME` under `root` whose `refs/main` reads `rev`.
fn hub(root: &Path, name: &str, rev: &str) -> PathBuf {
    let dir = root.join(format!("models--org--{name}"));
    std::fs::create_dir_all(dir.join("refs")).unwrap();
    std::fs::create_dir_all(dir.join("snapshots")).unwrap();
    std::fs::write(dir.join("refs/main"), rev).unwrap();
    dir
}

fn refused(name: &str, root: &Path) -> bool {
    matches!(find_in_roots(name, &[root.display().to_string()]), Err(f) if f.code == SqlState::INSUFFICIENT_PRIVILEGE)
}

/// Refused, or found but what the engine would load from it is nothing (the load then says why)
/// or lies inside the root.
fn never_outside(name: &str, root: &Path) -> bool {
    match find_in_roots(name, &[root.display().to_string()]) {
        Err(_) => true,
        Ok(folder) => biomed_ner_engine::ModelFiles::locate(&folder)
            .map_or(true, |f| std::fs::canonicalize(&f.dir).unwrap().starts_with(std::fs::canonicalize(root).unwrap())),
    }
}

#[test]
fn a_hub_cache_inside_the_root_is_found() {
    let (base, root, _) = setup("inside");
    // As the hub writes it: the snapshot's files are links to blobs of the same cache folder.
    let dir = hub(&root, "good", "abc");
    let (blobs, snap) = (dir.join("blobs"), dir.join("snapshots/abc"));
    copy_model(&blobs);
    std::fs::create_dir_all(&snap).unwrap();
    for f in std::fs::read_dir(&blobs).unwrap().flatten() {
        symlink(Path::new("../../blobs").join(f.file_name()), snap.join(f.file_name())).unwrap();
    }
    assert_eq!(find_in_roots("models--org--good", &[root.display().to_string()]).unwrap(), dir);
    copy_model(&root.join("plain"));
    assert!(find_in_roots("plain", &[root.display().to_string()]).is_ok());
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn a_hub_cache_that_leads_out_is_refused() {
    let (base, root, outside) = setup("out");
    // refs/main holding an absolute path, or climbing out with "..": not a snapshot's name.
    hub(&root, "absolute", &outside.display().to_string());
    assert!(never_outside("models--org--absolute", &root));
    assert!(biomed_ner_engine::ModelFiles::locate(&root.join("models--org--absolute")).is_err());
    hub(&root, "climbs", "../../../outside");
    assert!(never_outside("models--org--climbs", &root));
    assert!(biomed_ner_engine::ModelFiles::locate(&root.join("models--org--climbs")).is_err());
    // A snapshot that is a link to a folder outside.
    let dir = hub(&root, "linked", "abc");
    symlink(&outside, dir.join("snapshots/abc")).unwrap();
    assert!(refused("models--org--linked", &root));
    // A folder inside whose weights are a link to a file outside.
    let inner = root.join("weights-out");
    copy_model(&inner);
    std::fs::remove_file(inner.join("model.safetensors")).unwrap();
    symlink(outside.join("model.safetensors"), inner.join("model.safetensors")).unwrap();
    assert!(refused("weights-out", &root));
    // The folder itself a link outside (as before).
    symlink(&outside, root.join("linkout")).unwrap();
    assert!(refused("linkout", &root));
    std::fs::remove_dir_all(base).unwrap();
}
