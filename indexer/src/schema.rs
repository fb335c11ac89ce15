//! The tantivy schema. Two document types share one index: `file` (one per
//! indexed file: hash, size, counts) and `chunk` (retrievable text plus the
//! symbols defined in it). Every document carries `path`, so deleting a file's
//! term removes all of its documents in one operation.
//!
//! Symbols are not documents of their own: a repository has several times more
//! definitions than chunks (generated bindings hold thousands of constants per
//! file), and a stored document per definition made indexing slow and the
//! index large. Each chunk document carries the names it defines as terms
//! (`name_lc`, `name_text`) and the definitions themselves in one compact
//! stored field (`symbols`), so a name lookup returns the chunk and its text in
//! one fetch.

use tantivy::schema::{
    BytesOptions, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, STORED,
    STRING,
};
use tantivy::TantivyDocument;

use crate::analyze::{Chunk, Symbol};
use crate::lang::SymbolKind;
use crate::tokenize::CODE_TOKENIZER;

pub(crate) const DOC_FILE: &str = "file";
pub(crate) const DOC_CHUNK: &str = "chunk";

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
    /// File documents only: `path`, `lang` and `hash` as columns.
    pub file_path: Field,
    pub file_lang: Field,
    pub file_hash: Field,
    /// File documents: first line of the file's first chunk (0 when it has none).
    pub first_line: Field,
    pub text: Field,
    pub sym_text: Field,
    pub context: Field,
    /// Lowercased names defined in the chunk, whole (exact lookups).
    pub name_lc: Field,
    /// Names defined in the chunk, split into words.
    pub name_text: Field,
    /// The chunk's symbols, encoded by [`encode_symbols`].
    pub symbols: Field,
    pub start_line: Field,
    pub end_line: Field,
    pub start_byte: Field,
    pub end_byte: Field,
}

pub(crate) fn build() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let code = |stored: bool, fieldnorms: bool| {
        let idx = TextFieldIndexing::default()
            .set_tokenizer(CODE_TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqs)
            .set_fieldnorms(fieldnorms);
        let o = TextOptions::default().set_indexing_options(idx);
        if stored {
            o.set_stored()
        } else {
            o
        }
    };
    // Exact names: a chunk defining forty constants is no weaker a match for
    // one of them than a chunk defining one, so no length normalisation.
    let exact_names = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    let fields = Fields {
        doc_type: b.add_text_field("doc_type", STRING | STORED),
        path: b.add_text_field("path", STRING | STORED),
        file_key: b.add_text_field("file_key", STRING),
        path_text: b.add_text_field("path_text", code(false, true)),
        lang: b.add_text_field("lang", STORED),
        hash: b.add_text_field("hash", STORED),
        // The file documents' record is also kept in columns (FAST, file documents
        // only): opening an index reads every file's record from them, which touches a
        // few MB instead of most of the doc store.
        file_path: b.add_text_field("file_path", FAST),
        file_lang: b.add_text_field("file_lang", FAST),
        file_hash: b.add_text_field("file_hash", FAST),
        size: b.add_u64_field("size", STORED | FAST),
        mtime: b.add_u64_field("mtime", STORED | FAST),
        n_chunks: b.add_u64_field("n_chunks", STORED | FAST),
        n_symbols: b.add_u64_field("n_symbols", STORED | FAST),
        first_line: b.add_u64_field("first_line", STORED),
        text: b.add_text_field("text", code(true, true)),
        sym_text: b.add_text_field("sym_text", code(false, true)),
        context: b.add_text_field("context", STORED),
        name_lc: b.add_text_field("name_lc", exact_names),
        name_text: b.add_text_field("name_text", code(false, true)),
        symbols: b.add_bytes_field("symbols", BytesOptions::default().set_stored()),
        start_line: b.add_u64_field("start_line", STORED | FAST),
        end_line: b.add_u64_field("end_line", STORED),
        start_byte: b.add_u64_field("start_byte", STORED),
        end_byte: b.add_u64_field("end_byte", STORED),
    };
    (b.build(), fields)
}

/// In-memory identity of a chunk (search fusion, dedup): `path#start_line`.
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
    pub first_line: u64,
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
        d.add_text(self.file_path, r.path);
        d.add_text(self.file_lang, r.lang);
        d.add_text(self.file_hash, r.hash);
        d.add_u64(self.size, r.size);
        d.add_u64(self.mtime, r.mtime);
        d.add_u64(self.n_chunks, r.n_chunks);
        d.add_u64(self.n_symbols, r.n_symbols);
        d.add_u64(self.first_line, r.first_line);
        d
    }

    /// A chunk and the symbols whose definition starts in it.
    pub(crate) fn chunk_doc(
        &self,
        path: &str,
        lang: &str,
        c: &Chunk,
        symbols: &[&Symbol],
    ) -> TantivyDocument {
        let mut d = TantivyDocument::default();
        d.add_text(self.doc_type, DOC_CHUNK);
        d.add_text(self.path, path);
        d.add_text(self.lang, lang);
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
        if !symbols.is_empty() {
            let mut names = String::new();
            for s in symbols {
                d.add_text(self.name_lc, s.name.to_lowercase());
                names.push_str(&s.name);
                names.push(' ');
            }
            d.add_text(self.name_text, &names);
            d.add_bytes(self.symbols, &encode_symbols(symbols, c));
        }
        d.add_u64(self.start_line, c.start_line as u64);
        d.add_u64(self.end_line, c.end_line as u64);
        d.add_u64(self.start_byte, c.start_byte as u64);
        d.add_u64(self.end_byte, c.end_byte as u64);
        d
    }
}

// ------------------------------------------------------------- symbol codec
//
// Per symbol: kind, name, scope ("" for none), start/end line, start/end byte,
// then the signature: 0 when it is the chunk's line `start_line` trimmed (the
// usual case, so it is not stored twice), else its length + 1 and its bytes.
// Strings are a varint length and UTF-8 bytes; numbers are LEB128 varints.

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// What [`crate::analyze`] stores as a symbol's signature, read back from its chunk.
fn signature_from_chunk(chunk_text: &str, chunk_start_line: usize, line: usize) -> Option<&str> {
    let i = line.checked_sub(chunk_start_line)?;
    let l = chunk_text.split('\n').nth(i)?.trim();
    let mut cut = l.len().min(crate::analyze::MAX_SIGNATURE_BYTES);
    while !l.is_char_boundary(cut) {
        cut -= 1;
    }
    Some(&l[..cut])
}

pub(crate) fn encode_symbols(symbols: &[&Symbol], chunk: &Chunk) -> Vec<u8> {
    let mut out = Vec::with_capacity(symbols.len() * 24);
    for s in symbols {
        put_str(&mut out, s.kind.as_str());
        put_str(&mut out, &s.name);
        put_str(&mut out, s.scope.as_deref().unwrap_or(""));
        put_varint(&mut out, s.start_line as u64);
        put_varint(&mut out, s.end_line as u64);
        put_varint(&mut out, s.start_byte as u64);
        put_varint(&mut out, s.end_byte as u64);
        if signature_from_chunk(&chunk.text, chunk.start_line, s.start_line)
            == Some(s.signature.as_str())
        {
            put_varint(&mut out, 0);
        } else {
            put_varint(&mut out, s.signature.len() as u64 + 1);
            out.extend_from_slice(s.signature.as_bytes());
        }
    }
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(len)?;
        let b = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(b)
    }

    fn str(&mut self) -> Option<&'a str> {
        let len = self.varint()? as usize;
        std::str::from_utf8(self.bytes(len)?).ok()
    }
}

/// The symbols of one chunk document. A malformed field yields the symbols
/// decoded before the damage, never a panic.
pub(crate) fn decode_symbols(
    bytes: &[u8],
    path: &str,
    lang: &str,
    chunk_text: &str,
    chunk_start_line: usize,
) -> Vec<Symbol> {
    let mut r = Reader { bytes, pos: 0 };
    let mut out = Vec::new();
    while r.pos < bytes.len() {
        let Some(s) = decode_one(&mut r, path, lang, chunk_text, chunk_start_line) else {
            break;
        };
        out.push(s);
    }
    out
}

fn decode_one(
    r: &mut Reader<'_>,
    path: &str,
    lang: &str,
    chunk_text: &str,
    chunk_start_line: usize,
) -> Option<Symbol> {
    let kind = SymbolKind::parse(r.str()?)?;
    let name = r.str()?.to_string();
    let scope = r.str()?;
    let start_line = r.varint()? as usize;
    let end_line = r.varint()? as usize;
    let start_byte = r.varint()? as usize;
    let end_byte = r.varint()? as usize;
    let signature = match r.varint()? {
        0 => signature_from_chunk(chunk_text, chunk_start_line, start_line)
            .unwrap_or("")
            .to_string(),
        n => std::str::from_utf8(r.bytes(n as usize - 1)?)
            .ok()?
            .to_string(),
    };
    Some(Symbol {
        name,
        kind,
        scope: (!scope.is_empty()).then(|| scope.to_string()),
        signature,
        path: path.to_string(),
        lang: lang.to_string(),
        start_byte,
        end_byte,
        start_line,
        end_line,
    })
}

/// Typed access to stored fields.
pub(crate) trait DocExt {
    fn str_of(&self, f: Field) -> &str;
    fn u64_of(&self, f: Field) -> u64;
    fn bytes_of(&self, f: Field) -> &[u8];
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

    fn bytes_of(&self, f: Field) -> &[u8] {
        use tantivy::schema::Value;
        self.get_first(f).and_then(|v| v.as_bytes()).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(name: &str, scope: Option<&str>, line: usize, signature: &str) -> Symbol {
        Symbol {
            name: name.into(),
            kind: SymbolKind::Method,
            scope: scope.map(str::to_string),
            signature: signature.into(),
            path: "src/a.rs".into(),
            lang: "rust".into(),
            start_byte: 1000 + line,
            end_byte: 300_000,
            start_line: line,
            end_line: line + 2,
        }
    }

    #[test]
    fn symbols_round_trip_through_the_stored_field() {
        let text = "impl Parser {\n    pub fn parse(&self) -> u8 {\n        1\n    }\n}";
        let chunk = Chunk {
            start_byte: 0,
            end_byte: text.len(),
            start_line: 10,
            end_line: 14,
            text: text.into(),
            symbols: vec![],
            context: String::new(),
            hash: String::new(),
        };
        let a = sym("parse", Some("Parser"), 11, "pub fn parse(&self) -> u8 {");
        // Not the chunk's line: stored explicitly.
        let b = sym("élan\tx", None, 9, "fn élan() { /* \t */");
        let c = sym("Parser", None, 10, "impl Parser {");
        let bytes = encode_symbols(&[&a, &b, &c], &chunk);
        let back = decode_symbols(&bytes, "src/a.rs", "rust", text, 10);
        assert_eq!(back, vec![a, b, c]);
        // Damage is contained: a truncated field gives the symbols before it.
        let back = decode_symbols(&bytes[..bytes.len() - 3], "src/a.rs", "rust", text, 10);
        assert_eq!(back.len(), 2);
        assert!(decode_symbols(&[0xff; 12], "p", "l", "", 1).is_empty());
    }
}
