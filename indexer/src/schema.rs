//! The tantivy schema. Three document types share one index: `file` (one per
//! indexed file: hash, size, counts), `chunk` (retrievable text) and `symbol`
//! (definitions). Every document carries `path`, so deleting a file's term
//! removes all of its documents in one operation.

use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, STORED, STRING,
};
use tantivy::TantivyDocument;

use crate::analyze::{Chunk, Symbol};
use crate::tokenize::CODE_TOKENIZER;

pub(crate) const DOC_FILE: &str = "file";
pub(crate) const DOC_CHUNK: &str = "chunk";
pub(crate) const DOC_SYMBOL: &str = "symbol";

#[derive(Clone, Copy)]
pub(crate) struct Fields {
    pub doc_type: Field,
    pub path: Field,
    /// Unique to file documents: `path` (so the file record can be replaced alone).
    pub file_key: Field,
    pub path_text: Field,
    pub lang: Field,
    pub hash: Field,
    pub size: Field,
    pub mtime: Field,
    pub n_chunks: Field,
    pub n_symbols: Field,
    pub first_chunk: Field,
    pub text: Field,
    pub sym_text: Field,
    pub context: Field,
    pub chunk_key: Field,
    pub sym_chunk: Field,
    pub name: Field,
    pub name_lc: Field,
    pub name_text: Field,
    pub kind: Field,
    pub scope: Field,
    pub signature: Field,
    pub start_line: Field,
    pub end_line: Field,
    pub start_byte: Field,
    pub end_byte: Field,
}

pub(crate) fn build() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let code = |stored: bool| {
        let idx = TextFieldIndexing::default()
            .set_tokenizer(CODE_TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqs);
        let o = TextOptions::default().set_indexing_options(idx);
        if stored {
            o.set_stored()
        } else {
            o
        }
    };
    let fields = Fields {
        doc_type: b.add_text_field("doc_type", STRING | STORED),
        path: b.add_text_field("path", STRING | STORED),
        file_key: b.add_text_field("file_key", STRING),
        path_text: b.add_text_field("path_text", code(false)),
        lang: b.add_text_field("lang", STRING | STORED),
        hash: b.add_text_field("hash", STORED),
        size: b.add_u64_field("size", STORED),
        mtime: b.add_u64_field("mtime", STORED),
        n_chunks: b.add_u64_field("n_chunks", STORED),
        n_symbols: b.add_u64_field("n_symbols", STORED),
        first_chunk: b.add_text_field("first_chunk", STORED),
        text: b.add_text_field("text", code(true)),
        sym_text: b.add_text_field("sym_text", code(false)),
        context: b.add_text_field("context", STORED),
        chunk_key: b.add_text_field("chunk_key", STRING | STORED),
        sym_chunk: b.add_text_field("sym_chunk", STORED),
        name: b.add_text_field("name", STORED),
        name_lc: b.add_text_field("name_lc", STRING),
        name_text: b.add_text_field("name_text", code(false)),
        kind: b.add_text_field("kind", STRING | STORED),
        scope: b.add_text_field("scope", STORED),
        signature: b.add_text_field("signature", STORED),
        start_line: b.add_u64_field("start_line", STORED | FAST),
        end_line: b.add_u64_field("end_line", STORED | FAST),
        start_byte: b.add_u64_field("start_byte", STORED),
        end_byte: b.add_u64_field("end_byte", STORED),
    };
    (b.build(), fields)
}

pub(crate) fn chunk_key(path: &str, start_line: usize) -> String {
    format!("{path}#{start_line}")
}

pub(crate) struct FileRecord<'a> {
    pub path: &'a str,
    pub lang: &'a str,
    pub hash: &'a str,
    pub size: u64,
    pub mtime: u64,
    pub n_chunks: u64,
    pub n_symbols: u64,
    pub first_chunk: Option<String>,
}

impl Fields {
    pub(crate) fn file_doc(&self, r: &FileRecord<'_>) -> TantivyDocument {
        let mut d = TantivyDocument::default();
        d.add_text(self.doc_type, DOC_FILE);
        d.add_text(self.path, r.path);
        d.add_text(self.file_key, r.path);
        // Path components and the file stem are searchable words.
        d.add_text(self.path_text, r.path.replace(['/', '.', '-'], " "));
        d.add_text(self.lang, r.lang);
        d.add_text(self.hash, r.hash);
        d.add_u64(self.size, r.size);
        d.add_u64(self.mtime, r.mtime);
        d.add_u64(self.n_chunks, r.n_chunks);
        d.add_u64(self.n_symbols, r.n_symbols);
        if let Some(fc) = &r.first_chunk {
            d.add_text(self.first_chunk, fc);
        }
        d
    }

    pub(crate) fn chunk_doc(&self, path: &str, lang: &str, c: &Chunk) -> TantivyDocument {
        let mut d = TantivyDocument::default();
        d.add_text(self.doc_type, DOC_CHUNK);
        d.add_text(self.path, path);
        d.add_text(self.lang, lang);
        d.add_text(self.chunk_key, chunk_key(path, c.start_line));
        d.add_text(self.text, &c.text);
        // Names defined here, the enclosing scope and the file name weigh as symbols.
        let file_name = path.rsplit('/').next().unwrap_or(path);
        let stem = file_name.split('.').next().unwrap_or(file_name);
        let mut sym = c.symbols.join(" ");
        sym.push(' ');
        sym.push_str(&c.context);
        sym.push(' ');
        sym.push_str(stem);
        d.add_text(self.sym_text, &sym);
        d.add_text(self.context, &c.context);
        d.add_text(self.hash, &c.hash);
        d.add_u64(self.start_line, c.start_line as u64);
        d.add_u64(self.end_line, c.end_line as u64);
        d.add_u64(self.start_byte, c.start_byte as u64);
        d.add_u64(self.end_byte, c.end_byte as u64);
        d
    }

    pub(crate) fn symbol_doc(&self, s: &Symbol, chunk: Option<&str>) -> TantivyDocument {
        let mut d = TantivyDocument::default();
        d.add_text(self.doc_type, DOC_SYMBOL);
        d.add_text(self.path, &s.path);
        d.add_text(self.lang, &s.lang);
        d.add_text(self.name, &s.name);
        d.add_text(self.name_lc, s.name.to_lowercase());
        d.add_text(self.name_text, &s.name);
        d.add_text(self.kind, s.kind.as_str());
        if let Some(scope) = &s.scope {
            d.add_text(self.scope, scope);
        }
        d.add_text(self.signature, &s.signature);
        if let Some(c) = chunk {
            d.add_text(self.sym_chunk, c);
        }
        d.add_u64(self.start_line, s.start_line as u64);
        d.add_u64(self.end_line, s.end_line as u64);
        d.add_u64(self.start_byte, s.start_byte as u64);
        d.add_u64(self.end_byte, s.end_byte as u64);
        d
    }
}

/// Typed access to stored fields.
pub(crate) trait DocExt {
    fn str_of(&self, f: Field) -> &str;
    fn u64_of(&self, f: Field) -> u64;
}

impl DocExt for TantivyDocument {
    fn str_of(&self, f: Field) -> &str {
        use tantivy::schema::Value;
        self.get_first(f).and_then(|v| v.as_str()).unwrap_or("")
    }

    fn u64_of(&self, f: Field) -> u64 {
        use tantivy::schema::Value;
        self.get_first(f).and_then(|v| v.as_u64()).unwrap_or(0)
    }
}
