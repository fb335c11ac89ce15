//! Tauri's build step. The web front end is built by `npm run build` in `ui/`
//! (`make ui`); a clone that has not built it yet still compiles, with a page that
//! says how to build it rather than a blank window.

use std::path::Path;

fn main() {
    let dist = Path::new("../ui/dist");
    println!("cargo:rerun-if-changed=../ui/dist");
    if !dist.join("index.html").exists() {
        std::fs::create_dir_all(dist).expect("cannot create ui/dist");
        std::fs::write(
            dist.join("index.html"),
            "<!doctype html><meta charset=utf-8><title>Cairn</title>\
             <body style=\"font:16px sans-serif;margin:3em\"><h1>The Cairn window was built without its web front end</h1>\
             <p>Build it with <code>make ui</code> (or <code>npm ci &amp;&amp; npm run build</code> in <code>ui/</code>), \
             then rebuild the app with <code>cargo build -p cairn-desktop</code>.</p></body>",
        )
        .expect("cannot write the placeholder ui/dist/index.html");
    }
    tauri_build::build()
}
