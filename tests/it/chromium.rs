//! Headless Chromium for the browser tests: finding it (or skipping), the flags every run
//! starts with, a one-shot run that dumps a page's DOM and screenshot, and the one-time
//! sign-in link a browser opens.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::app::TestApp;
use crate::dashboard::form_encode;
use crate::helpers::temp_dir;

/// Debian names it `chromium`; Ubuntu's snap shim `chromium-browser`.
fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// What every headless Chromium these tests run is started with: no sandbox, GPU, QUIC or
/// background traffic, a fresh-profile window of one size.
pub(crate) const HEADLESS_ARGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
];

/// The Chromium a browser test runs, or `None` (said) when there is none and none is
/// required; with `REVLEDGER_REQUIRE_BROWSER=1` a missing Chromium fails the test.
pub(crate) fn chromium_or_skip() -> Option<PathBuf> {
    let chromium = find_chromium();
    if chromium.is_none() {
        if std::env::var("REVLEDGER_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!(
                "REVLEDGER_REQUIRE_BROWSER=1 but neither chromium nor chromium-browser is on PATH"
            );
        }
        eprintln!("SKIPPED (chromium not installed)");
    }
    chromium
}

/// How long one Chromium run may take before it is killed.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// Opens `url` in a fresh headless Chromium profile; returns the DOM after load, and saves a
/// screenshot to `screenshot`.
pub(crate) fn chromium_dump(chromium: &Path, url: &str, screenshot: &Path) -> String {
    let profile = temp_dir();
    let mut child = Command::new(chromium)
        .args(HEADLESS_ARGS)
        .arg("--hide-scrollbars")
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg("--dump-dom")
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("chromium runs").is_some() {
            break;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            panic!("chromium did not finish {url} within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("chromium output");
    let _ = std::fs::remove_dir_all(profile);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A one-time sign-in link (absolute URL) for `token`, in `lang`, going on to `next`.
pub(crate) async fn sign_in_link(app: &TestApp, token: &str, lang: &str, next: &str) -> String {
    let link = app
        .request(
            "POST",
            &format!(
                "/dashboard/login/links?lang={lang}&next={}",
                form_encode(next)
            ),
            &[("Authorization", format!("Bearer {token}"))],
            b"",
        )
        .await;
    assert_eq!(link.status, 200, "{}", link.text);
    format!(
        "http://{}{}",
        app.address,
        link.body["url"].as_str().unwrap()
    )
}
