//! What a suggestion's ledger step pays besides signing: `git rev-parse HEAD` (the base
//! commit, cached 5 s) and a small append with fsync on the data directory's disk.

use std::io::Write;

use crate::git;
use crate::sandbox::Sandbox;
use crate::stats::{probe, Spread};

pub(crate) struct Probes {
    pub(crate) git_rev_parse: Spread,
    pub(crate) fsync_3k: Spread,
}

/// 20 runs of each, in the copy and its data directory.
pub(crate) fn run(sandbox: &Sandbox) -> Probes {
    let git_rev_parse = probe(20, || {
        let _ = git(&sandbox.repo, &["rev-parse", "--verify", "-q", "HEAD"]);
    });
    let fsync_3k = {
        let f = sandbox.path.join("data/fsync-probe");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&f)
            .expect("fsync probe file");
        let line = vec![b'x'; 3000];
        probe(20, || {
            let _ = file.write_all(&line);
            let _ = file.sync_all();
        })
    };
    Probes {
        git_rev_parse,
        fsync_3k,
    }
}
