//! What a member access at the cursor needs: the members of the receiver's type. At
//! `generator.` the model has to name a method of whatever `generator` is, which is
//! defined in another file more often than not; that type's definition with every function
//! body left out names its members in a few lines. The receiver's type is read from the
//! text around the cursor: an assignment from a constructor (`x = Foo(`, `let x =
//! Foo::new(`, `const x = new Foo(`), an annotation (`x: Foo`), a declaration (`Foo x =`),
//! a capitalised receiver (a type itself), `self`/`this` (the enclosing class and its
//! bases) or an imported module (`import x`, `from p import x`, `import * as x from`).

use std::sync::OnceLock;

use cairn_text::floor_char_boundary;
use regex::Regex;

use super::context::{fit, parent, MIN_SNIPPET, SNIPPET_OVERHEAD};
use super::*;

/// What the receiver of a member access was found to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Receiver {
    /// A type (class, struct, interface...) of this name.
    Type(String),
    /// A module imported under the receiver's name: its path as imported, with `/`
    /// separators and no extension (`exllama/generator`, `./util/net`).
    Module(String),
}

/// Lines an outline shows at most.
pub(super) const OUTLINE_MAX_LINES: usize = 60;
/// Lines of one signature kept at most (parameters over several lines).
const SIGNATURE_MAX_LINES: usize = 6;
/// Bytes before and after the cursor searched for where the receiver got its type, and
/// bytes at the start of the file searched for imports: a request never scans a whole
/// large file.
const SCAN_BEFORE: usize = 32 * 1024;
const SCAN_AFTER: usize = 8 * 1024;
const SCAN_HEAD: usize = 32 * 1024;

/// The identifier before the member-access operator the cursor follows (`a.b.`, `p->`,
/// `T::`), a member name partly typed after the operator allowed.
pub(super) fn receiver_at(text: &str, cursor: usize) -> Option<&str> {
    let line_start = text[..cursor].rfind('\n').map_or(0, |i| i + 1);
    let before = text[line_start..cursor].trim_end_matches(is_ident_char);
    let before = before
        .strip_suffix('.')
        .or_else(|| before.strip_suffix("->"))
        .or_else(|| before.strip_suffix("::"))?;
    let start = before.trim_end_matches(is_ident_char).len();
    let name = &before[start..];
    (!name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit())).then_some(name)
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// What `receiver` may be at `cursor` of `text`, most likely first.
pub(super) fn receiver_kinds(text: &str, cursor: usize, receiver: &str) -> Vec<Receiver> {
    let mut out = Vec::new();
    let mut push = |r: Receiver| {
        if !out.contains(&r) {
            out.push(r);
        }
    };
    // Where the receiver got its type: the code around the cursor, nearest first.
    let from = floor_char_boundary(text, cursor.saturating_sub(SCAN_BEFORE));
    let to = floor_char_boundary(text, cursor.saturating_add(SCAN_AFTER));
    let (window, cursor) = (&text[from..to], cursor - from);
    if matches!(receiver, "self" | "this" | "Self") {
        if let Some((own, bases)) = enclosing_class(&window[..cursor]) {
            // The bases first: the class's own members are mostly in the file already.
            for b in bases {
                push(Receiver::Type(b));
            }
            push(Receiver::Type(own));
        }
        return out;
    }
    if receiver.starts_with(|c: char| c.is_uppercase()) {
        push(Receiver::Type(receiver.to_string()));
    }
    let r = regex::escape(receiver);
    let typed = [
        // x = Foo(…), self.x = mod.Foo(…), x := Foo{…}, let mut x = Foo::new(…),
        // const x = new Foo(…), x: T = Foo(…)
        format!(
            r"(?:^|[^\w.])(?:self\.|this\.)?{r}\s*(?::[^=\n]+)?:?=\s*(?:new\s+|await\s+)?(?:\w+(?:\.|::))*([A-Z]\w*)"
        ),
        // let mut x = …; with `let`/`var`/`const` and a type annotation: x: Foo, x: &mut Foo
        format!(
            r"(?:^|[^\w.])(?:self\.|this\.)?{r}\s*:\s*(?:&\s*(?:mut\s+)?|\*\s*)?(?:\w+(?:\.|::))*([A-Z]\w*)"
        ),
        // Foo x = …, Foo<T> x;, (Foo x)
        format!(r"\b([A-Z]\w*)(?:<[^<>\n]*>)?(?:\[\])?[ \t]+\*?{r}\s*[=;,)]"),
    ];
    let mut found: Vec<(usize, String)> = Vec::new();
    for pattern in typed {
        let Ok(re) = Regex::new(&pattern) else {
            continue;
        };
        found.extend(
            re.captures_iter(window)
                .filter_map(|c| c.get(1))
                .map(|m| (m.start(), m.as_str().to_string())),
        );
    }
    // The nearest before the cursor, then the nearest after it.
    found.sort_by_key(|(at, _)| {
        if *at <= cursor {
            (0, cursor - at)
        } else {
            (1, at - cursor)
        }
    });
    for (_, t) in found {
        push(Receiver::Type(t));
    }
    // Imports: the head of the file, and the window where it is further down.
    let head = &text[..floor_char_boundary(text, SCAN_HEAD)];
    let mut modules = imported_modules(head, receiver);
    if to > head.len() {
        modules.extend(imported_modules(window, receiver));
    }
    for m in modules {
        push(Receiver::Module(m));
    }
    out
}

/// The class (or Rust `impl`) the text before the cursor is in, and its bases.
fn enclosing_class(before: &str) -> Option<(String, Vec<String>)> {
    static HEADER: OnceLock<Regex> = OnceLock::new();
    let re = HEADER.get_or_init(|| {
        Regex::new(
            r"(?m)^[ \t]*(?:[\w@]+[ \t]+)*?(?:class|struct|interface|impl(?:<[^>\n]*>)?)[ \t]+(?:[\w:]+(?:<[^>\n]*>)?[ \t]+for[ \t]+)?([A-Za-z_]\w*)([^\n{]*)",
        )
        .expect("valid regex")
    });
    let c = re.captures_iter(before).last()?;
    let own = c.get(1)?.as_str().to_string();
    let rest = c.get(2).map_or("", |m| m.as_str());
    let bases = rest
        .split(|c: char| !is_ident_char(c))
        .filter(|w| w.starts_with(|c: char| c.is_uppercase()) && w.len() > 1 && *w != own)
        .map(str::to_string)
        .collect();
    Some((own, bases))
}

/// Modules imported under the name `receiver`, as import paths.
fn imported_modules(text: &str, receiver: &str) -> Vec<String> {
    let r = regex::escape(receiver);
    let patterns = [
        // import x / import x.y (which binds x)
        format!(r"(?m)^[ \t]*import[ \t]+({r})(?:\.[\w.]+)?[ \t]*$"),
        // import a.b.x as y
        format!(r"(?m)^[ \t]*import[ \t]+([\w.]+)[ \t]+as[ \t]+{r}\b"),
        // from a.b import x / from a.b import (c, x) / from . import x as y
        format!(r"(?m)^[ \t]*from[ \t]+([\w.]+)[ \t]+import[ \t]+(\(?[^\n]*?\b{r}\b[^\n]*)"),
        // import x from './x' / import * as x from "./x"
        format!(
            r#"(?m)^[ \t]*import[ \t]+(?:\*[ \t]+as[ \t]+)?{r}[ \t]+from[ \t]+['"]([^'"]+)['"]"#
        ),
    ];
    let mut out = Vec::new();
    for (i, pattern) in patterns.iter().enumerate() {
        let Ok(re) = Regex::new(pattern) else {
            continue;
        };
        for c in re.captures_iter(text) {
            let Some(m) = c.get(1) else { continue };
            let path = match i {
                // `from a.b import x`: x is a module under a/b (or a name a/b defines,
                // which the type lookup finds); `x as y` is x's.
                2 => {
                    let names = c.get(2).map_or("", |n| n.as_str());
                    let name = names
                        .split(',')
                        .map(|item| {
                            item.trim_matches(|c: char| c == '(' || c == ')' || c.is_whitespace())
                        })
                        .find_map(|item| match item.split_once(" as ") {
                            Some((x, alias)) if alias.trim() == receiver => Some(x.trim()),
                            None if item == receiver => Some(item),
                            _ => None,
                        });
                    let Some(name) = name else { continue };
                    format!("{}/{name}", m.as_str().trim_matches('.').replace('.', "/"))
                }
                3 => m.as_str().to_string(),
                _ => m.as_str().replace('.', "/"),
            };
            let path = path.trim_start_matches('/').to_string();
            if !path.is_empty() && !out.contains(&path) {
                out.push(path);
            }
        }
    }
    out
}

impl Index {
    /// Outlines of what the receiver of the member access at `cursor` of `text` (the
    /// editor's content of `rel`) may be, most likely first, fitting in `room` characters
    /// together: at most [`OUTLINE_MAX`] of them. Definitions for which `excluded` holds
    /// (the window the prompt already shows) are passed over.
    pub(super) fn receiver_outlines(
        &self,
        rel: &str,
        text: &str,
        cursor: usize,
        room: usize,
        excluded: &dyn Fn(&str, usize, usize) -> bool,
    ) -> Vec<Snippet> {
        let Some(receiver) = receiver_at(text, cursor) else {
            return Vec::new();
        };
        let mut out: Vec<Snippet> = Vec::new();
        let mut left = room;
        for kind in receiver_kinds(text, cursor, receiver).into_iter().take(4) {
            if out.len() >= OUTLINE_MAX || left < MIN_SNIPPET {
                break;
            }
            let found = match &kind {
                Receiver::Type(name) => self.type_outline(rel, name, left, excluded),
                Receiver::Module(import) => self.module_outline(rel, import),
            };
            let Some(Outline {
                path,
                start_line,
                end_line,
                body,
                reason,
            }) = found
            else {
                continue;
            };
            if out
                .iter()
                .any(|s| s.path == path && s.start_line == start_line)
            {
                continue;
            }
            let reason = format!("{reason}, what `{receiver}` is");
            if let Some(mut sn) = fit(
                &path,
                start_line,
                body,
                left,
                1.0,
                SnippetKind::Definition,
                reason,
            ) {
                // The lines it stands for, not the lines it shows.
                sn.end_line = end_line;
                left = left.saturating_sub(sn.text.len() + sn.path.len() + SNIPPET_OVERHEAD);
                out.push(sn);
            }
        }
        out
    }

    /// The definition of the type `name` — whole where it fits in `room`, else with its
    /// function bodies left out — and its members defined outside it in the same file
    /// (Rust `impl` blocks) as stubs.
    fn type_outline(
        &self,
        rel: &str,
        name: &str,
        room: usize,
        excluded: &dyn Fn(&str, usize, usize) -> bool,
    ) -> Option<Outline> {
        let defs = self.symbols(name).ok()?;
        let def = defs
            .iter()
            .filter(|s| {
                s.name == name && is_type(s.kind) && !excluded(&s.path, s.start_line, s.end_line)
            })
            // The importer's own directory first.
            .min_by_key(|s| (parent(&s.path) != parent(rel), s.path.len()))?;
        let source = self.current_source(&def.path, def)?;
        let lines: Vec<&str> = source.lines().collect();
        let symbols = self.file_symbols(&self.inner.root.join(&def.path)).ok()?;
        let functions = function_lines(&symbols);
        let inside = |l: usize| def.start_line <= l && l <= def.end_line;
        // A definition that fits is shown whole: its bodies show how its members are used.
        let whole = lines
            .get(def.start_line.saturating_sub(1)..def.end_line.min(lines.len()))
            .unwrap_or_default()
            .join("\n");
        let mut body = if whole.len() + def.path.len() + SNIPPET_OVERHEAD <= room {
            whole
        } else {
            elided(&lines, def.start_line, def.end_line, &functions, true)
        };
        for m in symbols.iter().filter(|s| {
            !inside(s.start_line)
                && s.scope
                    .as_deref()
                    .and_then(|sc| sc.rsplit([':', '.']).next())
                    == Some(name)
        }) {
            body.push('\n');
            body.push_str(&elided(
                &lines,
                m.start_line,
                m.end_line,
                &[(m.start_line, m.end_line)],
                true,
            ));
        }
        Some(Outline {
            path: def.path.clone(),
            start_line: def.start_line,
            end_line: def.end_line,
            body,
            reason: format!("members of `{name}` ({})", def.kind),
        })
    }

    /// A module's file with its function bodies and imports left out.
    fn module_outline(&self, rel: &str, import: &str) -> Option<Outline> {
        let f = self.inner.fields;
        let last = import.rsplit('/').next().unwrap_or(import).to_lowercase();
        let mut terms = vec![(last.clone(), 1.0)];
        split_identifier(&last, |p| {
            if p.len() >= 2 && p != last {
                terms.push((p.to_lowercase(), 0.5));
            }
        });
        let searcher = self.inner.reader.searcher();
        let top = searcher
            .search(
                &terms_query(f.path_text, &terms),
                &TopDocs::with_limit(50).order_by_score(),
            )
            .ok()?;
        let mut paths: Vec<String> = Vec::new();
        for (_, addr) in top {
            let Ok(d) = searcher.doc::<TantivyDocument>(addr) else {
                continue;
            };
            let path = d.str_of(f.path).to_string();
            if path != rel && is_module_file(&path, import) && !paths.contains(&path) {
                paths.push(path);
            }
        }
        // The importer's own directory first, then the shortest path.
        let path = paths
            .into_iter()
            .min_by_key(|p| (parent(p) != parent(rel), p.len()))?;
        let source = std::fs::read_to_string(self.inner.root.join(&path)).ok()?;
        let lines: Vec<&str> = source.lines().collect();
        let symbols = self.file_symbols(&self.inner.root.join(&path)).ok()?;
        let functions = function_lines(&symbols);
        Some(Outline {
            body: elided(&lines, 1, lines.len(), &functions, false),
            path,
            start_line: 1,
            end_line: lines.len().max(1),
            reason: format!("outline of module `{import}`"),
        })
    }

    /// The file of `def` as it is on disk, when the index's lines for it still hold.
    fn current_source(&self, path: &str, def: &crate::analyze::Symbol) -> Option<String> {
        let source = std::fs::read_to_string(self.inner.root.join(path)).ok()?;
        let line = source.lines().nth(def.start_line.checked_sub(1)?)?;
        let head: String = def.signature.chars().take(24).collect();
        line.trim().starts_with(head.trim()).then_some(source)
    }
}

/// A definition with its function bodies left out, and the lines it stands for.
struct Outline {
    path: String,
    start_line: usize,
    end_line: usize,
    body: String,
    reason: String,
}

/// Outlines one completion's context holds at most.
pub(super) const OUTLINE_MAX: usize = 2;

/// The line ranges of the functions and methods among a file's `symbols`.
fn function_lines(symbols: &[crate::analyze::Symbol]) -> Vec<(usize, usize)> {
    symbols
        .iter()
        .filter(|s| matches!(s.kind, SymbolKind::Function | SymbolKind::Method))
        .map(|s| (s.start_line, s.end_line))
        .collect()
}

fn is_type(kind: SymbolKind) -> bool {
    matches!(
        kind,
        SymbolKind::Class
            | SymbolKind::Struct
            | SymbolKind::Trait
            | SymbolKind::Interface
            | SymbolKind::Enum
            | SymbolKind::Type
    )
}

fn is_import(line: &str) -> bool {
    ["import ", "from ", "use ", "#include", "package "]
        .iter()
        .any(|k| line.starts_with(k))
}

/// Whether a file at `path` (repository-relative) is the module imported as `import`.
pub(super) fn is_module_file(path: &str, import: &str) -> bool {
    let stem = path.rsplit_once('.').map_or(path, |(s, _)| s);
    let stem = stem
        .strip_suffix("/__init__")
        .or_else(|| stem.strip_suffix("/index"))
        .or_else(|| stem.strip_suffix("/mod"))
        .unwrap_or(stem);
    // A relative import names the file from the importer's directory; compare the parts
    // after any leading `./` and `../`.
    let import = import.trim_start_matches(['.', '/']);
    let import = import.rsplit_once("../").map_or(import, |(_, i)| i);
    stem == import || stem.ends_with(&format!("/{import}"))
}

/// `lines` (a file's, 0-based) from `first` to `last` (1-based, inclusive), with the
/// bodies of the functions among `functions` (1-based line ranges) left out: each keeps
/// its signature, closed as a stub, and any line in its body that assigns to a member
/// (`self.x =`, `self.a, self.b =`, `this.x =`), which is how Python and JavaScript
/// classes declare fields. Blank lines are dropped, and with `imports` false the lines
/// that import. At most [`OUTLINE_MAX_LINES`] lines.
pub(super) fn elided(
    lines: &[&str],
    first: usize,
    last: usize,
    functions: &[(usize, usize)],
    imports: bool,
) -> String {
    static MEMBER: OnceLock<Regex> = OnceLock::new();
    let member = MEMBER.get_or_init(|| {
        // `self.x = …`, `self.x: int = …`, and a tuple of them: `self.a, self.b = …`.
        Regex::new(
            r"^[ \t]*(?:self|this)\.\w+(?:[ \t]*,[ \t]*(?:self|this)\.\w+)*[ \t]*(?::[^=\n]*)?=[^=]",
        )
        .expect("valid regex")
    });
    let mut out: Vec<String> = Vec::new();
    let mut n = first;
    let last = last.min(lines.len());
    while n <= last && out.len() < OUTLINE_MAX_LINES {
        let line = lines[n - 1].trim_end();
        let body = functions
            .iter()
            .filter(|(s, e)| *s == n && *e > n)
            .map(|(_, e)| *e)
            .max();
        let Some(end) = body else {
            if let Some(line) = without_comment(line) {
                if imports || !is_import(&line) {
                    out.push(line);
                }
            }
            n += 1;
            continue;
        };
        let end = end.min(last);
        // The signature: its decorators, then up to the line where its brackets close.
        let mut head = n;
        while head < end && lines[head - 1].trim_start().starts_with('@') {
            head += 1;
        }
        let mut depth = 0i32;
        let mut sig_end = head;
        for (k, l) in lines
            .iter()
            .enumerate()
            .take(end.min(head + SIGNATURE_MAX_LINES - 1))
            .skip(head - 1)
        {
            depth += l.matches(['(', '[']).count() as i32 - l.matches([')', ']']).count() as i32;
            sig_end = k + 1;
            if depth <= 0 {
                break;
            }
        }
        for l in &lines[n - 1..sig_end - 1] {
            out.push(l.trim_end().to_string());
        }
        out.push(stub(lines[sig_end - 1].trim_end()));
        for l in &lines[sig_end..end.min(last)] {
            if member.is_match(l) && out.len() < OUTLINE_MAX_LINES {
                out.push(l.trim_end().to_string());
            }
        }
        n = end + 1;
    }
    out.join("\n")
}

/// `line` without a comment at its end (`x = 1  # why`, `int x; // why`), `None` for a
/// line that is only a comment or blank: an outline names things, the comments that
/// explain them cost more than they tell the model here.
fn without_comment(line: &str) -> Option<String> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') || t.starts_with("//") {
        return None;
    }
    let cut = ["  #", "\t#", "  //", "\t//"]
        .iter()
        .filter_map(|m| line.find(m))
        .min()
        // A marker inside a string literal is not a comment.
        .filter(|&at| line[..at].matches(['"', '\'']).count() % 2 == 0);
    Some(cut.map_or(line, |at| &line[..at]).trim_end().to_string())
}

/// A signature's last line closed with an empty body: `def f(x): ...`, `fn f() { ... }`.
fn stub(line: &str) -> String {
    if let Some(open) = line.strip_suffix('{') {
        format!("{}{{ ... }}", open)
    } else if line.ends_with(':') {
        format!("{line} ...")
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receiver_is_the_name_before_the_operator() {
        let at_end = |t: &str| receiver_at(t, t.len()).map(str::to_string);
        assert_eq!(at_end("    x = generator.").as_deref(), Some("generator"));
        assert_eq!(
            at_end("    self.generator.gen_be").as_deref(),
            Some("generator")
        );
        assert_eq!(at_end("  p->").as_deref(), Some("p"));
        assert_eq!(at_end("let v = Vec::").as_deref(), Some("Vec"));
        assert_eq!(at_end("    foo()."), None);
        assert_eq!(at_end("    generator"), None);
        assert_eq!(at_end("x = 1."), None);
    }

    #[test]
    fn the_receivers_type_comes_from_the_code_around_it() {
        let t = "from exllama import generator as g2\nimport torch\n\ndef run(cache: ExLlamaCache):\n    gen = ExLlamaGenerator(model, tok, cache)\n    gen.";
        assert_eq!(
            receiver_kinds(t, t.len(), "gen"),
            vec![Receiver::Type("ExLlamaGenerator".into())]
        );
        assert_eq!(
            receiver_kinds(t, t.len(), "cache"),
            vec![Receiver::Type("ExLlamaCache".into())]
        );
        assert_eq!(
            receiver_kinds(t, t.len(), "torch"),
            vec![Receiver::Module("torch".into())]
        );
        assert_eq!(
            receiver_kinds(t, t.len(), "g2"),
            vec![Receiver::Module("exllama/generator".into())]
        );
        // Rust, Java and JavaScript spellings.
        let rs = "let mut idx = Index::open(&root)?;\nidx.";
        assert_eq!(
            receiver_kinds(rs, rs.len(), "idx"),
            vec![Receiver::Type("Index".into())]
        );
        let java = "    Parser parser = new Parser(src);\n    parser.";
        assert_eq!(
            receiver_kinds(java, java.len(), "parser"),
            vec![Receiver::Type("Parser".into())]
        );
        let js = "import * as net from './util/net';\nconst c = new net.Client();\nnet.";
        assert_eq!(
            receiver_kinds(js, js.len(), "net"),
            vec![Receiver::Module("./util/net".into())]
        );
        assert_eq!(
            receiver_kinds(js, js.len(), "c"),
            vec![Receiver::Type("Client".into())]
        );
        // Far down a large file: the imports at its head still count, an assignment
        // further back than the window does not.
        let far = format!(
            "import torch\ngen = Old()\n{}gen.x\ntorch.",
            "y = 1\n".repeat(8_000)
        );
        assert_eq!(
            receiver_kinds(&far, far.len(), "torch"),
            vec![Receiver::Module("torch".into())]
        );
        assert!(receiver_kinds(&far, far.len(), "gen").is_empty());
        // A comparison is not an assignment.
        let cmp = "if gen == Other(1):\n    gen.";
        assert!(receiver_kinds(cmp, cmp.len(), "gen").is_empty());
    }

    #[test]
    fn self_is_the_enclosing_class_and_its_bases() {
        let t = "class Handler(BaseHandler, mixins.LogMixin):\n    def go(self):\n        self.";
        assert_eq!(
            receiver_kinds(t, t.len(), "self"),
            vec![
                Receiver::Type("BaseHandler".into()),
                Receiver::Type("LogMixin".into()),
                Receiver::Type("Handler".into()),
            ]
        );
        let rs = "impl Display for Ledger {\n    fn fmt(&self) {\n        self.";
        assert_eq!(
            receiver_kinds(rs, rs.len(), "self"),
            vec![Receiver::Type("Ledger".into())]
        );
    }

    #[test]
    fn comments_are_left_out_of_an_outline() {
        assert_eq!(
            without_comment("    top_k = 40   # consider the top k").as_deref(),
            Some("    top_k = 40")
        );
        assert_eq!(
            without_comment("    int x;  // count").as_deref(),
            Some("    int x;")
        );
        assert_eq!(
            without_comment("    sep = \"  # \"").as_deref(),
            Some("    sep = \"  # \"")
        );
        assert_eq!(without_comment("    # only a comment"), None);
        assert_eq!(without_comment("   "), None);
    }

    #[test]
    fn module_files_match_their_import_paths() {
        assert!(is_module_file("exllama/generator.py", "exllama/generator"));
        assert!(is_module_file(
            "src/exllama/generator.py",
            "exllama/generator"
        ));
        assert!(is_module_file("pkg/util/__init__.py", "util"));
        assert!(is_module_file("web/util/net.ts", "./util/net"));
        assert!(is_module_file("web/util/net/index.ts", "../util/net"));
        assert!(!is_module_file("mygenerator.py", "generator"));
    }

    #[test]
    fn an_outline_keeps_signatures_and_member_assignments() {
        let src = "class Gen:\n    \"\"\"Makes text.\"\"\"\n\n    def __init__(self, model,\n                 cache):\n        self.model = model\n        self.code, self.out = run()\n        if cache:\n            self.cache = cache\n\n    def begin(self, ids):\n        return ids\n";
        let lines: Vec<&str> = src.lines().collect();
        let out = elided(&lines, 1, lines.len(), &[(4, 9), (11, 12)], true);
        expect_test::expect![[r#"
            class Gen:
                """Makes text."""
                def __init__(self, model,
                             cache): ...
                    self.model = model
                    self.code, self.out = run()
                        self.cache = cache
                def begin(self, ids): ..."#]]
        .assert_eq(&out);
        let rs = "impl Gen {\n    pub fn new() -> Self {\n        Gen {}\n    }\n}\n";
        let lines: Vec<&str> = rs.lines().collect();
        expect_test::expect![[r#"
            impl Gen {
                pub fn new() -> Self { ... }
            }"#]]
        .assert_eq(&elided(&lines, 1, lines.len(), &[(2, 4)], true));
    }
}
