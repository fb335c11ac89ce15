//! Every grammar loads with this tree-sitter core (a bad ABI mix fails here)
//! and yields the expected symbols and chunks for a small sample.

use cairn_indexer::{analyze_text, language_label, Lang};
use expect_test::{expect, Expect};
use std::path::Path;

fn render(path: &str, text: &str) -> String {
    let lang = Lang::from_path(Path::new(path)).expect("sample has a grammar");
    // The grammar loads and parses the sample without errors.
    let mut parser = tree_sitter::Parser::new();
    parser
        .set_language(&lang.grammar())
        .unwrap_or_else(|e| panic!("{path}: grammar does not load: {e}"));
    let tree = parser.parse(text, None).expect("parse");
    assert!(
        !tree.root_node().has_error(),
        "{path}: sample has syntax errors"
    );

    let a = analyze_text(
        &mut parser,
        path,
        Some(lang),
        &language_label(Path::new(path)),
        text,
        &|| false,
    );
    assert!(a.syntactic);
    let mut out = String::new();
    for s in &a.symbols {
        out.push_str(&format!(
            "{} {} {}-{} scope={} sig={:?}\n",
            s.kind,
            s.name,
            s.start_line,
            s.end_line,
            s.scope.as_deref().unwrap_or("-"),
            s.signature
        ));
    }
    for c in &a.chunks {
        out.push_str(&format!(
            "chunk {}-{} symbols=[{}] context={}\n",
            c.start_line,
            c.end_line,
            c.symbols.join(","),
            c.context
        ));
    }
    out
}

fn check(path: &str, text: &str, expected: Expect) {
    expected.assert_eq(&render(path, text));
}

#[test]
fn every_language_has_a_sample() {
    // Keep this list in step with Lang::ALL: each language below has a test.
    let covered = [
        "a.rs", "a.py", "a.js", "a.ts", "a.tsx", "a.go", "A.java", "a.c", "a.cpp", "a.cs",
    ];
    let langs: Vec<Lang> = covered
        .iter()
        .map(|p| Lang::from_path(Path::new(p)).unwrap())
        .collect();
    for l in Lang::ALL {
        assert!(langs.contains(&l), "{l:?} has no sample");
    }
}

#[test]
fn rust() {
    check(
        "src/lib.rs",
        r#"use std::fmt;

/// A parsed configuration.
#[derive(Debug)]
pub struct Config {
    pub name: String,
    pub retries: u32,
}

pub const MAX_RETRIES: u32 = 5;

pub trait Source {
    fn load(&self) -> Config;
}

impl Config {
    pub fn new(name: &str) -> Self {
        Config { name: name.to_string(), retries: 0 }
    }

    fn bump(&mut self) {
        self.retries += 1;
    }
}

pub enum Mode { Fast, Slow }

mod inner {
    pub fn helper() -> u32 {
        42
    }
}

macro_rules! square { ($x:expr) => { $x * $x }; }

pub fn parse_config(text: &str) -> Config {
    let mut c = Config::new(text);
    c.bump();
    c
}
"#,
        expect![[r#"
            struct Config 5-8 scope=- sig="pub struct Config {"
            const MAX_RETRIES 10-10 scope=- sig="pub const MAX_RETRIES: u32 = 5;"
            trait Source 12-14 scope=- sig="pub trait Source {"
            method load 13-13 scope=Source sig="fn load(&self) -> Config;"
            method new 17-19 scope=Config sig="pub fn new(name: &str) -> Self {"
            method bump 21-23 scope=Config sig="fn bump(&mut self) {"
            enum Mode 26-26 scope=- sig="pub enum Mode { Fast, Slow }"
            module inner 28-32 scope=- sig="mod inner {"
            function helper 29-31 scope=inner sig="pub fn helper() -> u32 {"
            macro square 34-34 scope=- sig="macro_rules! square { ($x:expr) => { $x * $x }; }"
            function parse_config 36-40 scope=- sig="pub fn parse_config(text: &str) -> Config {"
            chunk 1-1 symbols=[] context=
            chunk 3-8 symbols=[Config] context=
            chunk 10-14 symbols=[MAX_RETRIES,Source,load] context=
            chunk 16-24 symbols=[new,bump] context=
            chunk 26-26 symbols=[Mode] context=
            chunk 28-32 symbols=[inner,helper] context=
            chunk 34-34 symbols=[square] context=
            chunk 36-40 symbols=[parse_config] context=
        "#]],
    );
}

#[test]
fn python() {
    check(
        "pkg/models.py",
        r#"import os

DEFAULT_TIMEOUT = 30


class Session(object):
    """A session."""

    def __init__(self, url):
        self.url = url

    @property
    def host(self):
        return self.url.split("/")[2]

    def request(self, method, timeout=DEFAULT_TIMEOUT):
        def inner():
            return method
        return inner()


def get(url, **kwargs):
    s = Session(url)
    return s.request("GET")
"#,
        expect![[r#"
            const DEFAULT_TIMEOUT 3-3 scope=- sig="DEFAULT_TIMEOUT = 30"
            class Session 6-19 scope=- sig="class Session(object):"
            method __init__ 9-10 scope=Session sig="def __init__(self, url):"
            method host 13-14 scope=Session sig="def host(self):"
            method request 16-19 scope=Session sig="def request(self, method, timeout=DEFAULT_TIMEOUT):"
            function inner 17-18 scope=Session.request sig="def inner():"
            function get 22-24 scope=- sig="def get(url, **kwargs):"
            chunk 1-3 symbols=[DEFAULT_TIMEOUT] context=
            chunk 6-19 symbols=[Session,__init__,host,request,inner] context=
            chunk 22-24 symbols=[get] context=
        "#]],
    );
}

#[test]
fn javascript() {
    check(
        "lib/app.js",
        r#"const MAX_ITEMS = 10;

function render(items) {
  return items.slice(0, MAX_ITEMS).map((i) => i.name);
}

const fetchAll = async (url) => {
  const res = await fetch(url);
  return res.json();
};

class Store {
  constructor() {
    this.items = [];
  }

  add(item) {
    this.items.push(item);
  }
}

export default Store;
"#,
        expect![[r#"
            const MAX_ITEMS 1-1 scope=- sig="const MAX_ITEMS = 10;"
            function render 3-5 scope=- sig="function render(items) {"
            function fetchAll 7-10 scope=- sig="const fetchAll = async (url) => {"
            class Store 12-20 scope=- sig="class Store {"
            method constructor 13-15 scope=Store sig="constructor() {"
            method add 17-19 scope=Store sig="add(item) {"
            chunk 1-10 symbols=[MAX_ITEMS,render,fetchAll] context=
            chunk 12-20 symbols=[Store,constructor,add] context=
            chunk 22-22 symbols=[] context=
        "#]],
    );
}

#[test]
fn typescript() {
    check(
        "src/api.ts",
        r#"export interface User {
  id: number;
  name: string;
}

export type UserId = number;

export enum Role { Admin, Guest }

export class UserService {
  private users: User[] = [];

  find(id: UserId): User | undefined {
    return this.users.find((u) => u.id === id);
  }
}

export function createUser(name: string): User {
  return { id: 1, name };
}
"#,
        expect![[r#"
            interface User 1-4 scope=- sig="export interface User {"
            type UserId 6-6 scope=- sig="export type UserId = number;"
            enum Role 8-8 scope=- sig="export enum Role { Admin, Guest }"
            class UserService 10-16 scope=- sig="export class UserService {"
            method find 13-15 scope=UserService sig="find(id: UserId): User | undefined {"
            function createUser 18-20 scope=- sig="export function createUser(name: string): User {"
            chunk 1-4 symbols=[User] context=
            chunk 6-8 symbols=[UserId,Role] context=
            chunk 10-16 symbols=[UserService,find] context=
            chunk 18-20 symbols=[createUser] context=
        "#]],
    );
}

#[test]
fn tsx() {
    check(
        "src/Button.tsx",
        r#"interface Props {
  label: string;
}

export function Button(props: Props) {
  return <button className="btn">{props.label}</button>;
}

export const Icon = (p: Props) => <span>{p.label}</span>;
"#,
        expect![[r#"
            interface Props 1-3 scope=- sig="interface Props {"
            function Button 5-7 scope=- sig="export function Button(props: Props) {"
            function Icon 9-9 scope=- sig="export const Icon = (p: Props) => <span>{p.label}</span>;"
            chunk 1-9 symbols=[Props,Button,Icon] context=
        "#]],
    );
}

#[test]
fn go() {
    check(
        "server/server.go",
        r#"package server

import "fmt"

const DefaultPort = 8080

type Server struct {
	Port int
}

type Handler interface {
	Serve(s *Server) error
}

func (s *Server) Start() error {
	fmt.Println("start", s.Port)
	return nil
}

func NewServer() *Server {
	return &Server{Port: DefaultPort}
}
"#,
        expect![[r#"
            const DefaultPort 5-5 scope=- sig="const DefaultPort = 8080"
            struct Server 7-9 scope=- sig="type Server struct {"
            interface Handler 11-13 scope=- sig="type Handler interface {"
            method Start 15-18 scope=Server sig="func (s *Server) Start() error {"
            function NewServer 20-22 scope=- sig="func NewServer() *Server {"
            chunk 1-13 symbols=[DefaultPort,Server,Handler] context=
            chunk 15-18 symbols=[Start] context=
            chunk 20-22 symbols=[NewServer] context=
        "#]],
    );
}

#[test]
fn java() {
    check(
        "src/main/java/App.java",
        r#"package app;

import java.util.List;

public class App {
    private final List<String> names;

    public App(List<String> names) {
        this.names = names;
    }

    public int count() {
        return names.size();
    }

    interface Listener {
        void onEvent(String e);
    }

    enum Level { LOW, HIGH }
}
"#,
        expect![[r#"
            class App 5-21 scope=- sig="public class App {"
            method App 8-10 scope=App sig="public App(List<String> names) {"
            method count 12-14 scope=App sig="public int count() {"
            interface Listener 16-18 scope=App sig="interface Listener {"
            method onEvent 17-17 scope=App.Listener sig="void onEvent(String e);"
            enum Level 20-20 scope=App sig="enum Level { LOW, HIGH }"
            chunk 1-3 symbols=[] context=
            chunk 5-21 symbols=[App,count,Listener,onEvent,Level] context=
        "#]],
    );
}

#[test]
fn c() {
    check(
        "src/buf.c",
        r#"#include <stdlib.h>

#define BUF_SIZE 4096
#define MAX(a, b) ((a) > (b) ? (a) : (b))

struct buffer {
    char *data;
    size_t len;
};

typedef struct buffer buffer_t;

enum color { RED, GREEN };

static buffer_t *buffer_new(size_t cap) {
    buffer_t *b = malloc(sizeof(buffer_t));
    b->data = malloc(cap);
    b->len = 0;
    return b;
}

void buffer_free(buffer_t *b) {
    free(b->data);
    free(b);
}
"#,
        expect![[r##"
            const BUF_SIZE 3-3 scope=- sig="#define BUF_SIZE 4096"
            macro MAX 4-4 scope=- sig="#define MAX(a, b) ((a) > (b) ? (a) : (b))"
            struct buffer 6-9 scope=- sig="struct buffer {"
            type buffer_t 11-11 scope=- sig="typedef struct buffer buffer_t;"
            enum color 13-13 scope=- sig="enum color { RED, GREEN };"
            function buffer_new 15-20 scope=- sig="static buffer_t *buffer_new(size_t cap) {"
            function buffer_free 22-25 scope=- sig="void buffer_free(buffer_t *b) {"
            chunk 1-4 symbols=[BUF_SIZE,MAX] context=
            chunk 6-9 symbols=[buffer] context=
            chunk 11-13 symbols=[buffer_t,color] context=
            chunk 15-20 symbols=[buffer_new] context=
            chunk 22-25 symbols=[buffer_free] context=
        "##]],
    );
}

#[test]
fn cpp() {
    check(
        "src/shape.cpp",
        r#"#include <vector>

namespace geo {

class Shape {
public:
    virtual ~Shape() = default;
    virtual double area() const = 0;
};

class Circle : public Shape {
public:
    explicit Circle(double r) : r_(r) {}
    double area() const override { return 3.14159 * r_ * r_; }
private:
    double r_;
};

double total_area(const std::vector<Shape*>& shapes) {
    double t = 0;
    for (auto* s : shapes) t += s->area();
    return t;
}

}  // namespace geo

int geo_count(int n) {
    return n;
}
"#,
        expect![[r#"
            module geo 3-25 scope=- sig="namespace geo {"
            class Shape 5-9 scope=geo sig="class Shape {"
            method ~Shape 7-7 scope=geo::Shape sig="virtual ~Shape() = default;"
            class Circle 11-17 scope=geo sig="class Circle : public Shape {"
            method Circle 13-13 scope=geo::Circle sig="explicit Circle(double r) : r_(r) {}"
            method area 14-14 scope=geo::Circle sig="double area() const override { return 3.14159 * r_ * r_; }"
            function total_area 19-23 scope=geo sig="double total_area(const std::vector<Shape*>& shapes) {"
            function geo_count 27-29 scope=- sig="int geo_count(int n) {"
            chunk 1-1 symbols=[] context=
            chunk 3-25 symbols=[geo,Shape,~Shape,Circle,area,total_area] context=
            chunk 27-29 symbols=[geo_count] context=
        "#]],
    );
}

#[test]
fn csharp() {
    check(
        "src/Cache.cs",
        r#"using System.Collections.Generic;

namespace Demo.Caching
{
    public interface ICache
    {
        string Get(string key);
    }

    public class MemoryCache : ICache
    {
        private readonly Dictionary<string, string> items = new();

        public MemoryCache() { }

        public string Get(string key)
        {
            return items.TryGetValue(key, out var v) ? v : null;
        }
    }

    public enum Policy { Lru, Fifo }

    public struct Entry { public string Key; }
}
"#,
        expect![[r#"
            module Demo.Caching 3-25 scope=- sig="namespace Demo.Caching"
            interface ICache 5-8 scope=Demo.Caching sig="public interface ICache"
            method Get 7-7 scope=Demo.Caching.ICache sig="string Get(string key);"
            class MemoryCache 10-20 scope=Demo.Caching sig="public class MemoryCache : ICache"
            method MemoryCache 14-14 scope=Demo.Caching.MemoryCache sig="public MemoryCache() { }"
            method Get 16-19 scope=Demo.Caching.MemoryCache sig="public string Get(string key)"
            enum Policy 22-22 scope=Demo.Caching sig="public enum Policy { Lru, Fifo }"
            struct Entry 24-24 scope=Demo.Caching sig="public struct Entry { public string Key; }"
            chunk 1-1 symbols=[] context=
            chunk 3-25 symbols=[Demo.Caching,ICache,Get,MemoryCache,Policy,Entry] context=
        "#]],
    );
}

#[test]
fn big_class_is_split_into_method_chunks() {
    let mut text = String::from("class Big:\n    \"\"\"Doc.\"\"\"\n\n");
    for i in 0..12 {
        text.push_str(&format!("    def method_{i}(self, x):\n"));
        for j in 0..8 {
            text.push_str(&format!("        x = x + {j}  # step {j}\n"));
        }
        text.push_str("        return x\n\n");
    }
    let mut parser = tree_sitter::Parser::new();
    let a = analyze_text(
        &mut parser,
        "big.py",
        Some(Lang::Python),
        "python",
        &text,
        &|| false,
    );
    let method_chunks: Vec<_> = a.chunks.iter().filter(|c| c.context == "Big").collect();
    assert_eq!(method_chunks.len(), 12, "{:#?}", a.chunks);
    assert!(method_chunks
        .iter()
        .all(|c| c.symbols.len() == 1 && c.text.trim_start().starts_with("def method_")));
    // Chunks never overlap and stay in order.
    assert!(a.chunks.windows(2).all(|w| w[0].end_line < w[1].start_line));
}

#[test]
fn file_without_grammar_is_windowed() {
    let text: String = (1..=120).map(|i| format!("line {i}\n")).collect();
    let mut parser = tree_sitter::Parser::new();
    let a = analyze_text(&mut parser, "notes.md", None, "markdown", &text, &|| false);
    let spans: Vec<(usize, usize)> = a
        .chunks
        .iter()
        .map(|c| (c.start_line, c.end_line))
        .collect();
    assert_eq!(spans, [(1, 50), (51, 100), (101, 120)]);
}

#[test]
fn huge_single_line_is_split() {
    let text = "x".repeat(10_000);
    let mut parser = tree_sitter::Parser::new();
    let a = analyze_text(
        &mut parser,
        "min.js",
        Some(Lang::JavaScript),
        "javascript",
        &text,
        &|| false,
    );
    assert!(a.chunks.len() >= 3);
    assert!(a.chunks.iter().all(|c| c.text.len() <= 3000));
}

#[test]
fn deeply_nested_input_does_not_overflow() {
    let text = format!("x = {}1{}\n", "[".repeat(50_000), "]".repeat(50_000));
    let mut parser = tree_sitter::Parser::new();
    let a = analyze_text(
        &mut parser,
        "deep.py",
        Some(Lang::Python),
        "python",
        &text,
        &|| false,
    );
    assert!(!a.chunks.is_empty());
}
