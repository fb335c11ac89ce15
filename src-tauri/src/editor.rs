//! "Open in editor": the person's own editor (`$VISUAL`, then `$EDITOR`) at the cited
//! line where the editor is known to take one, a terminal editor inside a terminal
//! emulator, and the desktop's opener (`xdg-open`) when no editor is set or it fails.
//! The command lines are built by plain functions so they are tested without launching.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{DesktopError, ErrorKind, Result};

/// How the launch is chosen; read from the environment, set by hand in tests.
#[derive(Debug, Clone, Default)]
pub struct Launcher {
    pub visual: Option<String>,
    pub editor: Option<String>,
    /// A terminal emulator for terminal editors (`$TERMINAL`, else `x-terminal-emulator`).
    pub terminal: Option<String>,
    /// The desktop's opener.
    pub opener: String,
}

/// What was started, for the window's notice.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OpenedView {
    pub path: String,
    pub line: Option<u32>,
    /// `editor` or `opener`.
    pub via: String,
    /// The program and its arguments, as run.
    pub command: Vec<String>,
    /// Why the editor was passed over, when the opener was used instead.
    pub note: Option<String>,
}

/// Editors that read `+LINE` before the file.
const PLUS_LINE: &[&str] = &[
    "vi",
    "vim",
    "nvim",
    "gvim",
    "view",
    "nano",
    "emacs",
    "emacsclient",
    "micro",
    "mg",
    "ne",
    "joe",
    "kak",
    "gedit",
    "mousepad",
    "pluma",
    "xed",
];
/// Editors that take `-g FILE:LINE`.
const GOTO_FLAG: &[&str] = &["code", "code-insiders", "codium", "vscodium", "cursor"];
/// Editors that take `FILE:LINE`.
const COLON_LINE: &[&str] = &["subl", "sublime_text", "zed", "zeditor", "hx", "helix"];
/// Editors that need a terminal to draw in.
const IN_TERMINAL: &[&str] = &[
    "vi", "vim", "nvim", "view", "nano", "micro", "mg", "ne", "joe", "kak", "hx", "helix",
];

/// Splits an `$EDITOR` value into words, honouring single and double quotes
/// (`code --wait`, `"/opt/My Editor/bin/edit" -n`).
pub fn split_command(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

fn program_name(program: &str) -> String {
    Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
        .trim_end_matches(".exe")
        .to_string()
}

/// The command line that opens `path` at `line` in `editor` (an `$EDITOR` value);
/// `None` when the value is empty.
pub fn editor_command(editor: &str, path: &Path, line: Option<u32>) -> Option<Vec<String>> {
    let mut words = split_command(editor);
    if words.is_empty() {
        return None;
    }
    let name = program_name(&words[0]);
    let file = path.display().to_string();
    match line.filter(|l| *l > 0) {
        Some(l) if PLUS_LINE.contains(&name.as_str()) => {
            words.push(format!("+{l}"));
            words.push(file);
        }
        Some(l) if GOTO_FLAG.contains(&name.as_str()) => {
            words.push("-g".into());
            words.push(format!("{file}:{l}"));
        }
        Some(l) if COLON_LINE.contains(&name.as_str()) => words.push(format!("{file}:{l}")),
        _ => words.push(file),
    }
    Some(words)
}

/// Whether the editor draws in a terminal (and so needs one around it here).
pub fn needs_terminal(editor_cmd: &[String]) -> bool {
    let name = program_name(editor_cmd.first().map_or("", String::as_str));
    // `emacs -nw` is the terminal face of a graphical editor.
    IN_TERMINAL.contains(&name.as_str())
        || (name == "emacs"
            && editor_cmd
                .iter()
                .any(|a| a == "-nw" || a == "--no-window-system"))
}

/// The editor's command line wrapped in a terminal emulator (`TERMINAL -e CMD…`).
pub fn in_terminal(terminal: &str, editor_cmd: &[String]) -> Vec<String> {
    let mut words = split_command(terminal);
    words.push("-e".into());
    words.extend(editor_cmd.iter().cloned());
    words
}

fn on_path(program: &str) -> Option<String> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| program.to_string());
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

impl Launcher {
    pub fn from_env() -> Launcher {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else if cfg!(windows) {
            "explorer"
        } else {
            "xdg-open"
        };
        Launcher {
            visual: var("VISUAL"),
            editor: var("EDITOR"),
            terminal: var("TERMINAL").or_else(|| on_path("x-terminal-emulator")),
            opener: opener.to_string(),
        }
    }

    /// What would be run for the editor: `Ok(None)` when no editor is set, `Err` with
    /// the reason when it is set but cannot be run from a window.
    pub fn editor_plan(
        &self,
        path: &Path,
        line: Option<u32>,
    ) -> std::result::Result<Option<Vec<String>>, String> {
        let Some((var, value)) = self
            .visual
            .as_ref()
            .map(|v| ("$VISUAL", v))
            .or_else(|| self.editor.as_ref().map(|v| ("$EDITOR", v)))
        else {
            return Ok(None);
        };
        let Some(cmd) = editor_command(value, path, line) else {
            return Ok(None);
        };
        if !needs_terminal(&cmd) {
            return Ok(Some(cmd));
        }
        match &self.terminal {
            Some(t) => Ok(Some(in_terminal(t, &cmd))),
            None => Err(format!(
                "{var} ({value}) is a terminal editor and no terminal emulator was found (set $TERMINAL)"
            )),
        }
    }

    /// Opens `path` (absolute) at `line`: the editor first, the opener when there is no
    /// editor or it fails; an error that names both when neither works.
    pub fn open(&self, path: &Path, line: Option<u32>) -> Result<OpenedView> {
        let opened = |via: &str, command: Vec<String>, note: Option<String>| OpenedView {
            path: path.display().to_string(),
            line,
            via: via.to_string(),
            command,
            note,
        };
        let editor_problem = match self.editor_plan(path, line) {
            Ok(Some(cmd)) => match run(&cmd, Duration::from_millis(700)) {
                Ok(()) => return Ok(opened("editor", cmd, None)),
                Err(e) => Some(e),
            },
            Ok(None) => None,
            Err(e) => Some(e),
        };
        let opener = vec![self.opener.clone(), path.display().to_string()];
        // xdg-open hands the file over and exits; its status says whether that worked.
        match run(&opener, Duration::from_secs(10)) {
            Ok(()) => Ok(opened("opener", opener, editor_problem)),
            Err(e) => {
                let editor_part = editor_problem.unwrap_or_else(|| {
                    "no editor is set ($VISUAL and $EDITOR are empty)".to_string()
                });
                Err(DesktopError::new(
                    ErrorKind::Editor,
                    format!(
                        "Cannot open {}: {editor_part}, and {e}",
                        path.display()
                    ),
                    "Set $VISUAL or $EDITOR to your editor (for example `code` or `gvim`) before starting Cairn, or install xdg-utils and set a default application",
                ))
            }
        }
    }
}

/// Starts `cmd`; a start failure or an exit with an error within `settle` is a failure.
/// A program still running after `settle` is left to run (and reaped by a thread).
fn run(cmd: &[String], settle: Duration) -> std::result::Result<(), String> {
    let (program, args) = cmd.split_first().ok_or("an empty command")?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{program} could not be started ({e})"))?;
    let deadline = Instant::now() + settle;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{program} failed ({status})")),
            Ok(None) if Instant::now() >= deadline => {
                std::thread::spawn(move || child.wait());
                return Ok(());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(25)),
            Err(e) => return Err(format!("{program} could not be watched ({e})")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn line_arguments_per_editor() {
        let p = Path::new("/repo/src/calc.py");
        let cases: &[(&str, &[&str])] = &[
            ("vim", &["vim", "+12", "/repo/src/calc.py"]),
            (
                "/usr/bin/nvim",
                &["/usr/bin/nvim", "+12", "/repo/src/calc.py"],
            ),
            ("vi", &["vi", "+12", "/repo/src/calc.py"]),
            ("nano", &["nano", "+12", "/repo/src/calc.py"]),
            ("emacs", &["emacs", "+12", "/repo/src/calc.py"]),
            (
                "emacsclient -n",
                &["emacsclient", "-n", "+12", "/repo/src/calc.py"],
            ),
            ("code", &["code", "-g", "/repo/src/calc.py:12"]),
            (
                "code --wait",
                &["code", "--wait", "-g", "/repo/src/calc.py:12"],
            ),
            ("codium", &["codium", "-g", "/repo/src/calc.py:12"]),
            ("subl", &["subl", "/repo/src/calc.py:12"]),
            ("hx", &["hx", "/repo/src/calc.py:12"]),
            ("kate", &["kate", "/repo/src/calc.py"]),
            (
                "\"/opt/My Editor/edit\" -n",
                &["/opt/My Editor/edit", "-n", "/repo/src/calc.py"],
            ),
        ];
        for (editor, want) in cases {
            assert_eq!(
                editor_command(editor, p, Some(12)).unwrap(),
                words(want),
                "EDITOR={editor}"
            );
        }
    }

    #[test]
    fn no_line_means_just_the_file() {
        let p = Path::new("/r/a.rs");
        assert_eq!(
            editor_command("vim", p, None).unwrap(),
            words(&["vim", "/r/a.rs"])
        );
        assert_eq!(
            editor_command("code", p, Some(0)).unwrap(),
            words(&["code", "/r/a.rs"])
        );
        assert_eq!(editor_command("   ", p, Some(3)), None);
    }

    #[test]
    fn splitting_honours_quotes() {
        assert_eq!(
            split_command("  code   --wait "),
            words(&["code", "--wait"])
        );
        assert_eq!(
            split_command("'a b' \"c d\" e''"),
            words(&["a b", "c d", "e"])
        );
        assert_eq!(split_command("''"), words(&[""]));
        assert!(split_command("").is_empty());
    }

    #[test]
    fn terminal_editors_run_in_a_terminal() {
        let p = Path::new("/r/a.py");
        let l = Launcher {
            visual: None,
            editor: Some("nvim".into()),
            terminal: Some("x-terminal-emulator".into()),
            opener: "xdg-open".into(),
        };
        assert_eq!(
            l.editor_plan(p, Some(7)).unwrap().unwrap(),
            words(&["x-terminal-emulator", "-e", "nvim", "+7", "/r/a.py"])
        );
        // $VISUAL wins over $EDITOR; a graphical editor runs as it is.
        let l2 = Launcher {
            visual: Some("code".into()),
            ..l.clone()
        };
        assert_eq!(
            l2.editor_plan(p, Some(7)).unwrap().unwrap(),
            words(&["code", "-g", "/r/a.py:7"])
        );
        assert!(needs_terminal(&words(&["emacs", "-nw"])));
        assert!(!needs_terminal(&words(&["emacs"])));
        // Without a terminal emulator a terminal editor is reported, not run blind.
        let l3 = Launcher {
            terminal: None,
            ..l
        };
        let err = l3.editor_plan(p, Some(7)).unwrap_err();
        assert!(err.contains("$EDITOR (nvim) is a terminal editor"), "{err}");
        assert_eq!(Launcher::default().editor_plan(p, Some(7)), Ok(None));
    }

    /// A program that records its arguments, one per line, into `out`, then exits `code`.
    fn recorder(dir: &Path, name: &str, out: &Path, code: i32) -> String {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > '{}'\nexit {code}\n",
                out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.display().to_string()
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn the_editor_runs_and_the_opener_is_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("calc.py");
        std::fs::write(&file, "x = 1\n").unwrap();
        let (ed_out, op_out) = (dir.path().join("editor.out"), dir.path().join("opener.out"));
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let code = recorder(&bin, "code", &ed_out, 0);
        let opener = recorder(&bin, "xdg-open", &op_out, 0);
        let l = Launcher {
            visual: None,
            editor: Some(code.clone()),
            terminal: None,
            opener: opener.clone(),
        };
        let v = l.open(&file, Some(4)).unwrap();
        assert_eq!(v.via, "editor");
        assert_eq!(read(&ed_out), format!("-g\n{}:4\n", file.display()));
        assert!(
            !op_out.exists(),
            "the opener ran although the editor worked"
        );

        // An editor that is not there: the opener opens the file, with a note why.
        let l = Launcher {
            editor: Some(dir.path().join("no-such-editor").display().to_string()),
            ..l
        };
        let v = l.open(&file, Some(4)).unwrap();
        assert_eq!(v.via, "opener");
        assert!(
            v.note.as_deref().unwrap().contains("could not be started"),
            "{v:?}"
        );
        assert_eq!(read(&op_out), format!("{}\n", file.display()));

        // An editor that exits with an error counts as failed too.
        let failing = recorder(&bin, "gedit", &ed_out, 3);
        let l = Launcher {
            editor: Some(failing),
            ..l
        };
        let v = l.open(&file, Some(2)).unwrap();
        assert_eq!(v.via, "opener");
        assert!(v.note.as_deref().unwrap().contains("failed"), "{v:?}");
        assert_eq!(read(&ed_out), format!("+2\n{}\n", file.display()));
    }

    #[test]
    fn neither_editor_nor_opener_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("calc.py");
        let out = dir.path().join("opener.out");
        let failing_opener = recorder(dir.path(), "xdg-open", &out, 4);
        let l = Launcher {
            visual: None,
            editor: None,
            terminal: None,
            opener: failing_opener,
        };
        let e = l.open(&file, Some(1)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Editor);
        assert!(
            e.message.contains("no editor is set") && e.message.contains("xdg-open failed"),
            "{}",
            e.message
        );
        assert!(e.action.contains("$EDITOR"), "{}", e.action);

        let l = Launcher {
            editor: Some("vim".into()),
            opener: dir.path().join("missing-opener").display().to_string(),
            ..l
        };
        let e = l.open(&file, Some(1)).unwrap_err();
        assert!(
            e.message.contains("terminal editor") && e.message.contains("could not be started"),
            "{}",
            e.message
        );
    }
}
