//! The in-memory fake connector passes the bridged half of the compliance suite too (it stands
//! in for a platform in the bridge's own tests, so it must behave like one).

use mosaic_bridge::compliance::run_bridged_suite;
use mosaic_connector::compliance::Platform;
use mosaic_connector::fake::{FakeConnector, FakePlatform};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_connector_passes_the_bridged_suite() {
    run_bridged_suite(&FakePlatform(Arc::new(FakeConnector::new("fake", 2000)))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_rendered_for_telegram_markdown_under_the_bridge() {
    let fake =
        FakeConnector::new("fake", 500).with_markdown(mosaic_connector::Markdown::TelegramV2);
    let platform = FakePlatform(Arc::new(fake));
    run_bridged_suite(&platform).await;
    // The suite's long reply reached the platform escaped, never as raw CommonMark.
    let sent = platform.posted("room-1").await;
    assert!(
        sent.iter()
            .any(|t| t.contains("*bold* and `code` \\- v1\\.2 \\(done\\)\\!")),
        "{sent:?}"
    );
    assert!(!sent.iter().any(|t| t.contains("**bold**")), "{sent:?}");
}
