//! Symbols from a syntax tree: which node kinds define what in each language, names and
//! scopes read from the nodes, signatures cut to a line.

use super::*;

pub(super) enum Class {
    Symbol {
        kind: SymbolKind,
        name: String,
        /// Replaces the enclosing scope (C++ `Foo::bar`, Go receivers).
        scope: Option<String>,
    },
    /// A container that is not itself a symbol but scopes its members (Rust `impl`).
    Scope { name: String },
}

pub(super) fn node_text<'a>(node: Node<'_>, text: &'a str) -> &'a str {
    text.get(node.byte_range()).unwrap_or("")
}

pub(super) fn field_text<'a>(node: Node<'_>, field: &str, text: &'a str) -> Option<&'a str> {
    node.child_by_field_name(field).map(|n| node_text(n, text))
}

pub(super) fn valid_name(name: &str) -> Option<String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 || name.contains('\n') {
        None
    } else {
        Some(name.to_string())
    }
}

pub(super) fn is_upper_const(name: &str) -> bool {
    name.chars().any(|c| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Name of a C/C++ declarator, with the qualifier of a qualified name.
pub(super) fn declarator_name(node: Node<'_>, text: &str) -> Option<(String, Option<String>)> {
    let mut node = node;
    for _ in 0..16 {
        match node.kind() {
            "identifier" | "field_identifier" | "type_identifier" | "destructor_name"
            | "operator_name" | "primitive_type" => {
                return valid_name(node_text(node, text)).map(|n| (n, None));
            }
            "qualified_identifier" => {
                let scope = field_text(node, "scope", text).map(str::to_string);
                let name = node.child_by_field_name("name")?;
                let (n, inner) = declarator_name(name, text)?;
                let scope = match (scope, inner) {
                    (Some(s), Some(i)) => Some(format!("{s}::{i}")),
                    (s, i) => s.or(i),
                };
                return Some((n, scope));
            }
            _ => {}
        }
        node = match node.child_by_field_name("declarator") {
            Some(n) => n,
            None => {
                let mut cursor = node.walk();
                let next = node.named_children(&mut cursor).find(|c| {
                    !matches!(
                        c.kind(),
                        "type_qualifier" | "attribute_specifier" | "ms_call_modifier"
                    )
                });
                next?
            }
        };
    }
    None
}

/// Named node kinds that [`classify`] can turn into a symbol or scope (keep
/// in step with its match arms).
pub(super) fn definition_kinds(lang: Lang) -> &'static [&'static str] {
    match lang {
        Lang::Rust => &[
            "function_item",
            "function_signature_item",
            "struct_item",
            "union_item",
            "enum_item",
            "trait_item",
            "mod_item",
            "const_item",
            "static_item",
            "type_item",
            "macro_definition",
            "impl_item",
        ],
        Lang::Python => &["function_definition", "class_definition", "assignment"],
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => &[
            "function_declaration",
            "generator_function_declaration",
            "function_signature",
            "class_declaration",
            "abstract_class_declaration",
            "method_definition",
            "method_signature",
            "abstract_method_signature",
            "interface_declaration",
            "type_alias_declaration",
            "enum_declaration",
            "internal_module",
            "module",
            "variable_declarator",
        ],
        Lang::Go => &[
            "function_declaration",
            "method_declaration",
            "type_spec",
            "type_alias",
            "const_spec",
        ],
        Lang::Java => &[
            "class_declaration",
            "record_declaration",
            "interface_declaration",
            "annotation_type_declaration",
            "enum_declaration",
            "method_declaration",
            "constructor_declaration",
        ],
        Lang::CSharp => &[
            "class_declaration",
            "record_declaration",
            "struct_declaration",
            "record_struct_declaration",
            "interface_declaration",
            "enum_declaration",
            "method_declaration",
            "constructor_declaration",
            "namespace_declaration",
            "file_scoped_namespace_declaration",
            "delegate_declaration",
        ],
        Lang::C | Lang::Cpp => &[
            "function_definition",
            "struct_specifier",
            "union_specifier",
            "class_specifier",
            "enum_specifier",
            "type_definition",
            "preproc_def",
            "preproc_function_def",
            "namespace_definition",
        ],
    }
}

/// Node kinds that never hold a definition: the symbol walk does not descend
/// into them. Rust macro arguments are token trees (tree-sitter never parses
/// items inside them), and string literals hold only text and escapes.
pub(super) const OPAQUE_KINDS: &[&str] = &[
    "token_tree",
    "string_literal",
    "raw_string_literal",
    "string",
    "template_string",
    "char_literal",
    "concatenated_string",
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum KindRole {
    Plain,
    Definition,
    Opaque,
}

/// [`KindRole`] of every node kind id of `lang`'s grammar, built once: the
/// symbol walk visits every node, so it compares kind ids, not kind names.
pub(super) fn kind_roles(lang: Lang) -> &'static [KindRole] {
    use std::sync::OnceLock;
    static TABLES: [OnceLock<Vec<KindRole>>; Lang::ALL.len()] =
        [const { OnceLock::new() }; Lang::ALL.len()];
    let i = Lang::ALL.iter().position(|l| *l == lang).unwrap_or(0);
    TABLES[i].get_or_init(|| {
        let grammar = lang.grammar();
        let defs = definition_kinds(lang);
        (0..grammar.node_kind_count() as u16)
            .map(|id| match grammar.node_kind_for_id(id) {
                Some(k) if grammar.node_kind_is_named(id) && defs.contains(&k) => {
                    KindRole::Definition
                }
                Some(k) if OPAQUE_KINDS.contains(&k) => KindRole::Opaque,
                _ => KindRole::Plain,
            })
            .collect()
    })
}

pub(super) fn role_of(roles: &[KindRole], node: Node<'_>) -> KindRole {
    roles
        .get(node.kind_id() as usize)
        .copied()
        .unwrap_or(KindRole::Plain)
}

pub(super) fn classify(lang: Lang, node: Node<'_>, text: &str, in_type: bool) -> Option<Class> {
    let kind = node.kind();
    let name_field = || field_text(node, "name", text).and_then(valid_name);
    let sym = |k: SymbolKind, name: Option<String>| {
        name.map(|name| Class::Symbol {
            kind: k,
            name,
            scope: None,
        })
    };
    let func = if in_type {
        SymbolKind::Method
    } else {
        SymbolKind::Function
    };
    match lang {
        Lang::Rust => match kind {
            "function_item" | "function_signature_item" => sym(func, name_field()),
            "struct_item" | "union_item" => sym(SymbolKind::Struct, name_field()),
            "enum_item" => sym(SymbolKind::Enum, name_field()),
            "trait_item" => sym(SymbolKind::Trait, name_field()),
            "mod_item" => sym(SymbolKind::Module, name_field()),
            "const_item" | "static_item" => sym(SymbolKind::Const, name_field()),
            "type_item" => sym(SymbolKind::Type, name_field()),
            "macro_definition" => sym(SymbolKind::Macro, name_field()),
            "impl_item" => {
                let ty = node.child_by_field_name("type")?;
                // `Foo<T>` -> `Foo`, `a::Foo` -> `Foo`
                let t = node_text(ty, text);
                let base = t.split('<').next().unwrap_or(t);
                let base = base.rsplit("::").next().unwrap_or(base);
                valid_name(base).map(|name| Class::Scope { name })
            }
            _ => None,
        },
        Lang::Python => match kind {
            "function_definition" => sym(func, name_field()),
            "class_definition" => sym(SymbolKind::Class, name_field()),
            "assignment" => {
                let stmt = node.parent()?;
                if stmt.kind() != "expression_statement" || stmt.parent()?.kind() != "module" {
                    return None;
                }
                let left = node.child_by_field_name("left")?;
                let name = node_text(left, text);
                (left.kind() == "identifier" && is_upper_const(name))
                    .then(|| sym(SymbolKind::Const, valid_name(name)))
                    .flatten()
            }
            _ => None,
        },
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => match kind {
            "function_declaration" | "generator_function_declaration" | "function_signature" => {
                sym(SymbolKind::Function, name_field())
            }
            "class_declaration" | "abstract_class_declaration" => {
                sym(SymbolKind::Class, name_field())
            }
            "method_definition" | "method_signature" | "abstract_method_signature" => {
                sym(SymbolKind::Method, name_field())
            }
            "interface_declaration" => sym(SymbolKind::Interface, name_field()),
            "type_alias_declaration" => sym(SymbolKind::Type, name_field()),
            "enum_declaration" => sym(SymbolKind::Enum, name_field()),
            "internal_module" | "module" => sym(SymbolKind::Module, name_field()),
            "variable_declarator" => {
                let name_node = node.child_by_field_name("name")?;
                if name_node.kind() != "identifier" {
                    return None;
                }
                let name = node_text(name_node, text);
                let value_kind = node.child_by_field_name("value").map(|v| v.kind());
                if matches!(
                    value_kind,
                    Some(
                        "arrow_function"
                            | "function_expression"
                            | "function"
                            | "generator_function"
                    )
                ) {
                    return sym(func, valid_name(name));
                }
                let decl = node.parent()?;
                let top = decl.parent()?;
                let top_level = matches!(top.kind(), "program" | "export_statement");
                (top_level && is_upper_const(name))
                    .then(|| sym(SymbolKind::Const, valid_name(name)))
                    .flatten()
            }
            _ => None,
        },
        Lang::Go => match kind {
            "function_declaration" => sym(SymbolKind::Function, name_field()),
            "method_declaration" => {
                let name = name_field()?;
                let recv = node.child_by_field_name("receiver").and_then(|r| {
                    let mut stack = vec![r];
                    while let Some(n) = stack.pop() {
                        if n.kind() == "type_identifier" {
                            return valid_name(node_text(n, text));
                        }
                        let mut c = n.walk();
                        let children: Vec<_> = n.named_children(&mut c).collect();
                        stack.extend(children.into_iter().rev());
                    }
                    None
                });
                Some(Class::Symbol {
                    kind: SymbolKind::Method,
                    name,
                    scope: recv,
                })
            }
            "type_spec" | "type_alias" => {
                let k = match node.child_by_field_name("type").map(|t| t.kind()) {
                    Some("struct_type") => SymbolKind::Struct,
                    Some("interface_type") => SymbolKind::Interface,
                    _ => SymbolKind::Type,
                };
                sym(k, name_field())
            }
            "const_spec" => sym(SymbolKind::Const, name_field()),
            _ => None,
        },
        Lang::Java => match kind {
            "class_declaration" | "record_declaration" => sym(SymbolKind::Class, name_field()),
            "interface_declaration" | "annotation_type_declaration" => {
                sym(SymbolKind::Interface, name_field())
            }
            "enum_declaration" => sym(SymbolKind::Enum, name_field()),
            "method_declaration" | "constructor_declaration" => {
                sym(SymbolKind::Method, name_field())
            }
            _ => None,
        },
        Lang::CSharp => match kind {
            "class_declaration" | "record_declaration" => sym(SymbolKind::Class, name_field()),
            "struct_declaration" | "record_struct_declaration" => {
                sym(SymbolKind::Struct, name_field())
            }
            "interface_declaration" => sym(SymbolKind::Interface, name_field()),
            "enum_declaration" => sym(SymbolKind::Enum, name_field()),
            "method_declaration" | "constructor_declaration" => {
                sym(SymbolKind::Method, name_field())
            }
            "namespace_declaration" | "file_scoped_namespace_declaration" => {
                sym(SymbolKind::Module, name_field())
            }
            "delegate_declaration" => sym(SymbolKind::Type, name_field()),
            _ => None,
        },
        Lang::C | Lang::Cpp => match kind {
            "function_definition" => {
                let d = node.child_by_field_name("declarator")?;
                let (name, scope) = declarator_name(d, text)?;
                let k = if in_type || scope.is_some() {
                    SymbolKind::Method
                } else {
                    SymbolKind::Function
                };
                Some(Class::Symbol {
                    kind: k,
                    name,
                    scope,
                })
            }
            "struct_specifier" | "union_specifier" | "class_specifier" | "enum_specifier" => {
                node.child_by_field_name("body")?;
                let k = match kind {
                    "class_specifier" => SymbolKind::Class,
                    "enum_specifier" => SymbolKind::Enum,
                    _ => SymbolKind::Struct,
                };
                match name_field() {
                    Some(n) => sym(k, Some(n)),
                    None => None,
                }
            }
            "type_definition" => {
                let d = node.child_by_field_name("declarator")?;
                let (name, _) = declarator_name(d, text)?;
                sym(SymbolKind::Type, Some(name))
            }
            "preproc_def" => sym(SymbolKind::Const, name_field()),
            "preproc_function_def" => sym(SymbolKind::Macro, name_field()),
            "namespace_definition" => sym(SymbolKind::Module, name_field()),
            _ => None,
        },
    }
}

pub(super) fn scope_sep(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust | Lang::C | Lang::Cpp => "::",
        _ => ".",
    }
}

pub(super) struct ScopeEntry {
    node_id: usize,
    name: String,
    holds_methods: bool,
}

/// Walks the tree without recursion (deeply nested input must not overflow
/// the stack). Returns the symbols and the bytes covered by ERROR nodes.
pub(super) fn collect_symbols(
    lang: Lang,
    root: Node<'_>,
    text: &str,
    path: &str,
    lang_label: &str,
    lines: &LineIndex,
) -> (Vec<Symbol>, usize) {
    let mut symbols = Vec::new();
    let mut scopes: Vec<ScopeEntry> = Vec::new();
    let mut error_bytes = 0usize;
    let mut error_depth: Option<usize> = None;
    let mut depth = 0usize;
    let sep = scope_sep(lang);
    let roles = kind_roles(lang);
    let mut cursor = root.walk();
    'outer: loop {
        let node = cursor.node();
        if node.is_error() && error_depth.is_none() {
            error_bytes += node.byte_range().len();
            error_depth = Some(depth);
        }
        let in_type = scopes.last().is_some_and(|s| s.holds_methods);
        let role = role_of(roles, node);
        if role == KindRole::Definition {
            match classify(lang, node, text, in_type) {
                Some(Class::Symbol { kind, name, scope }) => {
                    let outer = if scopes.is_empty() {
                        None
                    } else {
                        Some(
                            scopes
                                .iter()
                                .map(|s| s.name.as_str())
                                .collect::<Vec<_>>()
                                .join(sep),
                        )
                    };
                    let scope = match (outer, scope) {
                        (Some(o), Some(s)) => Some(format!("{o}{sep}{s}")),
                        (o, s) => s.or(o),
                    };
                    let start = node.start_byte();
                    // The whole first line, so `type Server struct {` keeps its `type`.
                    let line_start = lines.line_start(lines.line_of(start));
                    let first_line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
                    let mut signature = text[line_start..first_line_end].trim().to_string();
                    if signature.len() > MAX_SIGNATURE_BYTES {
                        let mut cut = MAX_SIGNATURE_BYTES;
                        while !signature.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        signature.truncate(cut);
                    }
                    symbols.push(Symbol {
                        name: name.clone(),
                        kind,
                        scope,
                        signature,
                        path: path.to_string(),
                        lang: lang_label.to_string(),
                        start_byte: start,
                        end_byte: node.end_byte(),
                        start_line: lines.line_of(start) + 1,
                        end_line: lines.line_of(node.end_byte().saturating_sub(1).max(start)) + 1,
                    });
                    let holds = kind.holds_methods()
                        || (matches!(lang, Lang::Cpp | Lang::C) && kind == SymbolKind::Struct);
                    scopes.push(ScopeEntry {
                        node_id: node.id(),
                        name,
                        holds_methods: holds,
                    });
                }
                Some(Class::Scope { name }) => scopes.push(ScopeEntry {
                    node_id: node.id(),
                    name,
                    holds_methods: true,
                }),
                None => {}
            }
        }
        if role != KindRole::Opaque && cursor.goto_first_child() {
            depth += 1;
            continue;
        }
        loop {
            let leaving = cursor.node();
            if scopes.last().is_some_and(|s| s.node_id == leaving.id()) {
                scopes.pop();
            }
            if error_depth == Some(depth) {
                error_depth = None;
            }
            if cursor.goto_next_sibling() {
                continue 'outer;
            }
            if !cursor.goto_parent() {
                break 'outer;
            }
            depth -= 1;
        }
    }
    (symbols, error_bytes)
}
