//! Models by name: `biomed_ner.model = 'NAME'` is looked up in the folders of
//! `biomed_ner.model_path`, and a name that leads out of them is refused. Plain file-system
//! work, done by backends and the model process alike.

use std::path::{Path, PathBuf};

use crate::failure::{Failure, SqlState};

/// Whether `value` is a model name: one path component of letters, digits, `.`, `_` and `-`,
/// not starting with `.`.
pub fn is_model_name(value: &str) -> bool {
    let mut chars = value.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The folder `name` in the first of `roots` that has it, refusing one that leads out of its
/// root.
pub fn find_in_roots(name: &str, roots: &[String]) -> Result<PathBuf, Failure> {
    if roots.is_empty() {
        return Err(Failure::new(
            SqlState::UNDEFINED_FILE,
            format!("biomed_ner.model is the name \"{name}\", but biomed_ner.model_path lists no folders"),
            "An administrator sets biomed_ner.model_path (postgresql.conf or ALTER SYSTEM) to the folders that hold models; \
             a superuser can also set biomed_ner.model to a folder.",
        ));
    }
    for root in roots {
        let candidate = Path::new(root).join(name);
        if std::fs::symlink_metadata(&candidate).is_err() {
            continue;
        }
        // The folder itself, with every link resolved, must lie inside the root.
        let inside = match (std::fs::canonicalize(root), std::fs::canonicalize(&candidate)) {
            (Ok(r), Ok(c)) => c.starts_with(&r) && c != r,
            _ => false,
        };
        if !inside || files_leave(&candidate, root) {
            return Err(Failure::new(
                SqlState::INSUFFICIENT_PRIVILEGE,
                format!("model \"{name}\" leads out of biomed_ner.model_path"),
                "A model of biomed_ner.model_path must be a folder inside it, not a link to elsewhere.",
            ));
        }
        return Ok(candidate);
    }
    Err(Failure::new(
        SqlState::UNDEFINED_FILE,
        format!("no model named \"{name}\" in biomed_ner.model_path"),
        "SHOW biomed_ner.model_path lists the folders searched; ask an administrator to put the model there.",
    ))
}

/// Whether the files the engine would load from `folder` lead out of `root`: the folder it picks
/// (a hub cache's snapshot, through `refs/main` and links) or any entry of that folder, with every
/// link resolved. A folder the engine cannot use is left to the load, which says why.
fn files_leave(folder: &Path, root: &str) -> bool {
    let (Ok(files), Ok(root)) = (biomed_ner_engine::ModelFiles::locate(folder), std::fs::canonicalize(root)) else {
        return false;
    };
    let out = |p: &Path| std::fs::canonicalize(p).is_ok_and(|c| !c.starts_with(&root));
    out(&files.dir) || std::fs::read_dir(&files.dir).is_ok_and(|entries| entries.flatten().any(|e| out(&e.path())))
}

/// The folder of the server's `model` setting, `None` for the bundled model: a name is looked
/// up in `roots`, and a folder is the administrator's choice.
pub fn server_model_folder(model: &str, roots: &[String]) -> Result<Option<PathBuf>, Failure> {
    if model.is_empty() {
        Ok(None)
    } else if is_model_name(model) {
        find_in_roots(model, roots).map(Some)
    } else {
        Ok(Some(model.into()))
    }
}
