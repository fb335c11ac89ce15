//! The chat response cache: the same question, over the same sources, with the same
//! conversation before it, to the same model with the same generation settings, is
//! answered from an earlier answer instead of the model.
//!
//! The key is a digest of everything that decides the answer: the messages as the model
//! would get them (system prompt, the conversation so far, the sources' text, the selection,
//! the question with its whitespace normalised), the chat kind, the model's identity (name,
//! GGUF digest or endpoint and model id, quantization, runtime) and the generation settings
//! (max tokens, stop strings, sampling). An edited source, another model or a follow-up in a
//! conversation is another key.
//!
//! The store is one JSON Lines file per repository beside its ledger (`chat-cache.jsonl`):
//! an answer is appended as one line; a line that does not read (a torn tail after a crash,
//! a damaged file) is skipped with a warning and the file is rewritten without it at the next
//! answer. Bounded in entries and bytes: past either bound the oldest entries go (down to
//! three quarters of the bound, so a full cache is not rewritten at every answer), and the
//! file is rewritten through a temporary file and a rename. Two processes on one repository
//! (an editor and the desktop app) share the file: writes hold a lock file, and a reader sees
//! the other's answers when the file's length changed. It is a cache: a failure to read or
//! write it is a warning, never a failed chat.

use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_models::{ChatMessage, ChatRequest, Generation, ModelIdentity, StopReason};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The form of a cache line; entries of another version are not read.
const VERSION: u32 = 1;
/// The cache file's name in the repository's ledger directory.
pub const FILE_NAME: &str = "chat-cache.jsonl";

/// Where the chat response cache lives and how big it may grow.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatCacheOptions {
    /// Answer repeated questions from the cache (`[chat] cache`, default true).
    pub enabled: bool,
    /// The directory of the cache file; `None`: the repository's ledger directory.
    pub dir: Option<PathBuf>,
    /// Answers kept at most (`[chat] cache_max_entries`).
    pub max_entries: usize,
    /// Bytes of the cache file at most (`[chat] cache_max_bytes`).
    pub max_bytes: u64,
}

impl Default for ChatCacheOptions {
    fn default() -> Self {
        ChatCacheOptions {
            enabled: true,
            dir: None,
            max_entries: 512,
            max_bytes: 8 << 20,
        }
    }
}

/// One cached answer: the generation as the model returned it (text, model, sampling,
/// prompt template, usage), the `answered` record it was recorded under, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CachedEntry {
    pub v: u32,
    pub key: String,
    pub record_id: String,
    /// RFC 3339, UTC.
    pub at: String,
    pub generation: Generation,
}

impl CachedEntry {
    pub fn new(key: String, record_id: String, generation: Generation) -> CachedEntry {
        let at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        CachedEntry {
            v: VERSION,
            key,
            record_id,
            at,
            generation,
        }
    }
}

/// The key of a chat turn (hex SHA-256). `messages` are those the model would get, built
/// with the question's whitespace normalised ([`normalise_question`]) and before any
/// redaction; `request` gives the generation settings.
pub(crate) fn key(
    kind: &str,
    messages: &[ChatMessage],
    model: &ModelIdentity,
    request: &ChatRequest,
) -> String {
    let value = serde_json::json!({
        "v": VERSION,
        "kind": kind,
        "messages": messages,
        "model": model,
        "maxTokens": request.max_tokens,
        "stop": request.stop,
        "sampling": request.sampling,
    });
    let bytes = serde_json::to_vec(&value).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

/// The question as the key sees it: runs of whitespace are one space, none at the ends.
pub(crate) fn normalise_question(q: &str) -> String {
    q.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether an answer may be cached. Only one the model would give again, whole:
/// - greedy decoding (temperature 0): a sampled answer is one draw among many, and the
///   person asking again should get another draw, not the same one;
/// - the configured model itself, not a fallback that answered because it failed (the
///   key names the configured model);
/// - a complete answer, ended by the model (end of generation, a stop string): not one
///   cut by cancellation, the deadline, the token limit, a full context or the loop guard
///   (a repetition cut short is a failure to answer, and a cut answer asked again with a
///   larger limit would be another key anyway);
/// - some text.
pub(crate) fn cacheable(request: &ChatRequest, g: &Generation) -> bool {
    request.sampling.is_greedy()
        && g.sampling.is_greedy()
        && g.fallback.is_none()
        && matches!(
            g.stop_reason,
            StopReason::EndOfGeneration | StopReason::StopString(_)
        )
        && !g.text.trim().is_empty()
}

#[derive(Default)]
struct State {
    /// Oldest first.
    entries: Vec<(CachedEntry, usize)>,
    /// The file's length when it was last read or written by this process.
    seen_len: Option<u64>,
    /// Lines that did not read were skipped: rewrite the file at the next answer.
    damaged: bool,
}

/// The cache of one repository (see the module's documentation).
pub(crate) struct ChatCache {
    file: Option<PathBuf>,
    options: ChatCacheOptions,
    state: Mutex<State>,
}

impl ChatCache {
    /// The cache in `dir` (`None`: no place for one, so nothing is cached).
    pub fn new(dir: Option<PathBuf>, options: ChatCacheOptions) -> ChatCache {
        ChatCache {
            file: dir.map(|d| d.join(FILE_NAME)),
            options,
            state: Mutex::new(State::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.options.enabled && self.file.is_some()
    }

    #[cfg(test)]
    pub fn path(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The newest answer under `key`. Blocking (reads the file when it changed).
    pub fn lookup(&self, key: &str) -> Option<CachedEntry> {
        let file = self.file.as_ref()?;
        let mut st = self.state.lock();
        refresh(file, &mut st);
        st.entries
            .iter()
            .rev()
            .find(|(e, _)| e.key == key)
            .map(|(e, _)| e.clone())
    }

    /// Keeps `entry` (replacing an older answer under its key), evicting the oldest past
    /// the bounds. Blocking; errors are for the caller to warn about.
    pub fn insert(&self, entry: CachedEntry) -> std::io::Result<()> {
        let Some(file) = self.file.as_ref() else {
            return Ok(());
        };
        let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        if line.len() as u64 > self.options.max_bytes {
            // Larger than the whole cache may be: not kept.
            return Ok(());
        }
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(file.with_extension("lock"))?;
        fs4::fs_std::FileExt::lock_exclusive(&lock)?;
        let mut st = self.state.lock();
        // What another process appended since this one last looked.
        refresh(file, &mut st);
        let replaced = st.entries.iter().any(|(e, _)| e.key == entry.key);
        st.entries.retain(|(e, _)| e.key != entry.key);
        st.entries.push((entry, line.len()));
        let evicted = self.evict(&mut st);
        let result = if replaced || evicted || st.damaged {
            rewrite(file, &st.entries)
        } else {
            append(file, &line)
        };
        match result {
            Ok(len) => {
                st.seen_len = Some(len);
                st.damaged = false;
            }
            // What the file holds is unknown: read it again next time.
            Err(_) => st.seen_len = None,
        }
        let _ = fs4::fs_std::FileExt::unlock(&lock);
        result.map(|_| ())
    }

    /// Drops the oldest entries when a bound is passed, down to three quarters of it.
    fn evict(&self, st: &mut State) -> bool {
        let bytes: u64 = st.entries.iter().map(|(_, n)| *n as u64).sum();
        if st.entries.len() <= self.options.max_entries && bytes <= self.options.max_bytes {
            return false;
        }
        let keep_entries = (self.options.max_entries * 3 / 4).max(1);
        let keep_bytes = (self.options.max_bytes * 3 / 4).max(1);
        let mut kept_bytes = 0u64;
        // Keep the newest that fit; the newest entry always stays (it fit the bound).
        let mut cut = st.entries.len();
        for (kept, (i, (_, n))) in st.entries.iter().enumerate().rev().enumerate() {
            if kept > 0 && (kept + 1 > keep_entries || kept_bytes + *n as u64 > keep_bytes) {
                break;
            }
            kept_bytes += *n as u64;
            cut = i;
        }
        st.entries.drain(..cut);
        true
    }
}

/// Reads the file again when its length is not what this process last saw.
fn refresh(file: &Path, st: &mut State) {
    let len = match std::fs::metadata(file) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if st.seen_len != Some(0) {
                *st = State {
                    seen_len: Some(0),
                    ..State::default()
                };
            }
            return;
        }
        Err(e) => {
            warn_unreadable(st, file, &e.to_string());
            return;
        }
    };
    if st.seen_len == Some(len) {
        return;
    }
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            warn_unreadable(st, file, &e.to_string());
            return;
        }
    };
    let (entries, bad) = parse(&bytes);
    if bad > 0 {
        tracing::warn!(
            "chat cache {}: {bad} unreadable line(s) skipped; the file is rewritten without \
             them at the next answer",
            file.display()
        );
    }
    *st = State {
        entries,
        seen_len: Some(bytes.len() as u64),
        damaged: bad > 0,
    };
}

fn warn_unreadable(st: &mut State, file: &Path, why: &str) {
    tracing::warn!(
        "chat cache {} cannot be read ({why}); answering without it",
        file.display()
    );
    *st = State::default();
}

/// The entries of a cache file, oldest first (a later line under the same key wins), and
/// how many lines did not read (a last line without its newline is a torn write).
fn parse(bytes: &[u8]) -> (Vec<(CachedEntry, usize)>, usize) {
    let mut entries: Vec<(CachedEntry, usize)> = Vec::new();
    let mut bad = 0;
    let mut rest = bytes;
    while !rest.is_empty() {
        let (line, next, whole) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..], true),
            None => (rest, &rest[rest.len()..], false),
        };
        rest = next;
        if line.iter().all(u8::is_ascii_whitespace) && whole {
            continue;
        }
        match serde_json::from_slice::<CachedEntry>(line) {
            Ok(e) if whole && e.v == VERSION => {
                entries.retain(|(o, _)| o.key != e.key);
                entries.push((e, line.len() + 1));
            }
            _ => bad += 1,
        }
    }
    (entries, bad)
}

/// Appends one line; the file's new length. (The file was just read under the lock and
/// read whole, so it ends with a newline: a torn tail would have been marked damaged and
/// the file rewritten instead.)
fn append(file: &Path, line: &[u8]) -> std::io::Result<u64> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    f.write_all(line)?;
    Ok(f.metadata()?.len())
}

/// Writes `entries` to a temporary file and renames it over the cache file; its length.
fn rewrite(file: &Path, entries: &[(CachedEntry, usize)]) -> std::io::Result<u64> {
    let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
    let mut out = Vec::new();
    for (e, _) in entries {
        serde_json::to_writer(&mut out, e).map_err(std::io::Error::other)?;
        out.push(b'\n');
    }
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&out)?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|_| out.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_models::{Origin, PromptInfo, Role, Sampling, Usage};

    fn generation(text: &str) -> Generation {
        Generation {
            text: text.into(),
            stop_reason: StopReason::EndOfGeneration,
            usage: Usage::default(),
            model: ModelIdentity {
                name: "m".into(),
                origin: Origin::Local,
                gguf_sha256: Some("ab".into()),
                endpoint: None,
                model_id: "m".into(),
                quantization: None,
                runtime: "test".into(),
            },
            sampling: Sampling::default(),
            prompt: PromptInfo {
                mode: "chat".into(),
                template: "t".into(),
                template_sha256: "cd".into(),
                prompt_sha256: "ef".into(),
                budget: None,
            },
            fallback: None,
        }
    }

    fn entry(key: &str, text: &str) -> CachedEntry {
        CachedEntry::new(key.into(), format!("rec-{key}"), generation(text))
    }

    fn cache(dir: &Path, max_entries: usize, max_bytes: u64) -> ChatCache {
        ChatCache::new(
            Some(dir.to_path_buf()),
            ChatCacheOptions {
                max_entries,
                max_bytes,
                ..Default::default()
            },
        )
    }

    #[test]
    fn answers_survive_a_restart_and_a_later_answer_replaces_an_earlier_one() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), 16, 1 << 20);
        assert!(c.lookup("a").is_none());
        c.insert(entry("a", "first")).unwrap();
        c.insert(entry("b", "other")).unwrap();
        c.insert(entry("a", "second")).unwrap();
        let again = cache(dir.path(), 16, 1 << 20);
        assert_eq!(again.lookup("a").unwrap().generation.text, "second");
        assert_eq!(again.lookup("b").unwrap().record_id, "rec-b");
        let text = std::fs::read_to_string(c.path().unwrap()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn the_oldest_answers_go_past_the_entry_bound() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), 4, 1 << 20);
        for k in ["a", "b", "c", "d"] {
            c.insert(entry(k, "x")).unwrap();
        }
        assert!(c.lookup("a").is_some());
        c.insert(entry("e", "x")).unwrap();
        // Past 4: down to 3, the newest.
        let reopened = cache(dir.path(), 4, 1 << 20);
        let kept: Vec<bool> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|k| reopened.lookup(k).is_some())
            .collect();
        assert_eq!(kept, [false, false, true, true, true]);
    }

    #[test]
    fn the_oldest_answers_go_past_the_byte_bound() {
        let dir = tempfile::tempdir().unwrap();
        let one = serde_json::to_vec(&entry("a", &"x".repeat(1000)))
            .unwrap()
            .len() as u64
            + 1;
        let c = cache(dir.path(), 100, one * 3);
        for k in ["a", "b", "c", "d"] {
            c.insert(entry(k, &"x".repeat(1000))).unwrap();
        }
        let len = std::fs::metadata(c.path().unwrap()).unwrap().len();
        assert!(len <= one * 3, "{len} > {}", one * 3);
        assert!(c.lookup("a").is_none() && c.lookup("d").is_some());
        // An answer larger than the whole cache is not kept.
        c.insert(entry("huge", &"y".repeat(5000))).unwrap();
        assert!(c.lookup("huge").is_none());
    }

    #[test]
    fn a_damaged_file_is_skipped_line_by_line_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), 16, 1 << 20);
        c.insert(entry("a", "kept")).unwrap();
        let path = c.path().unwrap().to_path_buf();
        // Garbage, a line of another shape, and a torn tail.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"\x00\xffnot json\n{\"v\":1}\n{\"v\":1,\"key\":\"b\",\"rec")
            .unwrap();
        drop(f);
        let again = cache(dir.path(), 16, 1 << 20);
        assert_eq!(again.lookup("a").unwrap().generation.text, "kept");
        assert!(again.lookup("b").is_none());
        again.insert(entry("c", "new")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(cache(dir.path(), 16, 1 << 20).lookup("c").is_some());

        // A file that is nothing but garbage is an empty cache.
        std::fs::write(&path, b"\x89PNG\r\n\x1a\n garbage").unwrap();
        let garbage = cache(dir.path(), 16, 1 << 20);
        assert!(garbage.lookup("a").is_none());
        garbage.insert(entry("d", "fresh")).unwrap();
        assert!(cache(dir.path(), 16, 1 << 20).lookup("d").is_some());
    }

    #[test]
    fn a_torn_tail_does_not_swallow_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), 16, 1 << 20);
        c.insert(entry("a", "kept")).unwrap();
        let path = c.path().unwrap().to_path_buf();
        // Another process's write cut short, after this one last read the file.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"v\":1,\"key\":\"torn").unwrap();
        drop(f);
        c.insert(entry("b", "next")).unwrap();
        let again = cache(dir.path(), 16, 1 << 20);
        assert!(again.lookup("a").is_some() && again.lookup("b").is_some());
    }

    #[test]
    fn the_key_covers_question_history_sources_model_and_settings() {
        let model = generation("").model;
        let msgs = |user: &str| {
            vec![
                ChatMessage::new(Role::System, "sys"),
                ChatMessage::new(Role::User, user),
            ]
        };
        let req = ChatRequest::new(Vec::new());
        let base = key("ask", &msgs("q"), &model, &req);
        assert_eq!(base, key("ask", &msgs("q"), &model, &req));
        assert_ne!(base, key("explain", &msgs("q"), &model, &req));
        assert_ne!(base, key("ask", &msgs("q2"), &model, &req));
        let mut follow = msgs("earlier");
        follow.push(ChatMessage::new(Role::Assistant, "answer"));
        follow.push(ChatMessage::new(Role::User, "q"));
        assert_ne!(base, key("ask", &follow, &model, &req));
        let mut other = model.clone();
        other.gguf_sha256 = Some("other weights".into());
        assert_ne!(base, key("ask", &msgs("q"), &other, &req));
        let mut longer = ChatRequest::new(Vec::new());
        longer.max_tokens += 1;
        assert_ne!(base, key("ask", &msgs("q"), &model, &longer));
        assert_eq!(
            normalise_question("  How does\n verify\twork? "),
            "How does verify work?"
        );
    }

    #[test]
    fn only_whole_greedy_answers_of_the_configured_model_are_cached() {
        let req = ChatRequest::new(Vec::new());
        assert!(cacheable(&req, &generation("yes")));
        for stop in [
            StopReason::MaxTokens,
            StopReason::Cancelled,
            StopReason::Deadline,
            StopReason::ContextFull,
            StopReason::Repetition,
        ] {
            let mut g = generation("yes");
            g.stop_reason = stop.clone();
            assert!(!cacheable(&req, &g), "{stop:?}");
        }
        let mut sampled = ChatRequest::new(Vec::new());
        sampled.sampling.temperature = 0.7;
        assert!(!cacheable(&sampled, &generation("yes")));
        let mut fb = generation("yes");
        fb.fallback = Some(cairn_models::Fallback {
            from: "a".into(),
            reason: "down".into(),
        });
        assert!(!cacheable(&req, &fb));
        assert!(!cacheable(&req, &generation("  \n")));
    }
}
