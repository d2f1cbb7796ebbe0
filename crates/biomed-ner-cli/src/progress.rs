//! The progress bar, on stderr only: drawn in place where stderr is a terminal; with
//! `--progress` also where it is not (a pipe, a log file), then as plain lines, one a second
//! and one at the end; never with `--quiet`.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle, TermLike};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Where stderr is a terminal.
    Auto,
    /// `--progress`.
    Always,
    /// `--quiet`.
    Never,
}

/// A bar counting notes: done of `total` with the rate and the time left where the total is
/// known, else the notes done and the rate.
pub fn notes(mode: Mode, total: Option<u64>) -> ProgressBar {
    let terminal = std::io::stderr().is_terminal();
    let target = match mode {
        Mode::Never => ProgressDrawTarget::hidden(),
        Mode::Auto if !terminal => ProgressDrawTarget::hidden(),
        Mode::Always if !terminal => ProgressDrawTarget::term_like_with_hz(Box::new(Lines::default()), 1),
        Mode::Auto | Mode::Always => ProgressDrawTarget::stderr(),
    };
    let template = match total {
        Some(_) => "{wide_bar} {pos}/{len} notes, {rate} notes/s, {elapsed} elapsed, ETA {eta}",
        None => "{spinner} {pos} notes, {rate} notes/s, {elapsed} elapsed",
    };
    let style = ProgressStyle::with_template(template)
        .expect("the templates are valid")
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.1}", s.per_sec());
        });
    let bar = ProgressBar::with_draw_target(total, target).with_style(style);
    if terminal && mode != Mode::Never {
        bar.enable_steady_tick(Duration::from_millis(250));
    }
    bar
}

/// Stderr that is not a terminal: each drawing of the bar as one line, without the cursor
/// movements and padding of a terminal.
#[derive(Debug, Default)]
struct Lines {
    line: Mutex<String>,
}

impl TermLike for Lines {
    fn width(&self) -> u16 {
        100
    }

    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write_str(s)?;
        self.flush()
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.line.lock().unwrap_or_else(|e| e.into_inner()).push_str(s);
        Ok(())
    }

    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }

    fn flush(&self) -> std::io::Result<()> {
        let line = std::mem::take(&mut *self.line.lock().unwrap_or_else(|e| e.into_inner()));
        let line = line.trim_matches(|c: char| c == '\r' || c.is_whitespace());
        if line.is_empty() {
            return Ok(());
        }
        let mut err = std::io::stderr().lock();
        writeln!(err, "{line}")?;
        err.flush()
    }
}
