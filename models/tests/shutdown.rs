//! `local::shutdown_workers` on the real default model, in a process of its own because
//! it stops every model thread: the generation in flight ends as if cancelled, the
//! threads end, and later requests are a clear error instead of a hang.

mod common;

use std::time::{Duration, Instant};

use cairn_models::*;
use tokio::sync::mpsc;

#[test]
fn shutdown_stops_the_generation_in_flight_and_ends_the_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (path, sha) = common::tiny_model();
    let model = LocalModel::load("default", &path, Some(sha), LocalOptions::default())
        .expect("default model loads");
    let mut r = CompletionRequest::new("Once upon a time", "");
    r.max_tokens = 2000;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let fut = model.complete(r, Some(tx), CancellationToken::new());
    let (g, took) = rt.block_on(async {
        let h = tokio::spawn(fut);
        rx.recv().await.expect("a first token arrives");
        let started = Instant::now();
        let ended =
            tokio::task::spawn_blocking(|| local::shutdown_workers(Duration::from_secs(10)))
                .await
                .unwrap();
        assert!(ended, "the model thread did not end");
        (h.await.unwrap(), started.elapsed())
    });
    let g = g.expect("the request in flight is answered");
    assert_eq!(g.stop_reason, StopReason::Cancelled);
    assert!(g.usage.generated_tokens < 2000, "{:?}", g.usage);
    assert!(took < Duration::from_secs(10), "{took:?}");

    let after = rt.block_on(model.complete(
        CompletionRequest::new("def f():", ""),
        None,
        CancellationToken::new(),
    ));
    assert!(
        matches!(after, Err(ModelError::WorkerGone(_))),
        "a request after shutdown: {after:?}"
    );
    // Nothing left to stop.
    assert!(local::shutdown_workers(Duration::from_millis(10)));
}
