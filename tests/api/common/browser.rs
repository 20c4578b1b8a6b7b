//! A real headless Chromium driven through chromedriver (WebDriver), for the dashboard's
//! end-to-end tests. Without Chromium the tests say loudly that they were skipped; with
//! `CI=true` a missing Chromium is a failure. A failing scenario saves a screenshot to
//! `target/browser-screenshots/<test>.png`.

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use super::eventually;

/// How long a browser step may take to show its result.
pub const STEP: Duration = Duration::from_secs(10);

/// Where Chromium and chromedriver are: `STILE_CHROMIUM` / `STILE_CHROMEDRIVER`, or
/// Debian's paths.
fn browser_paths() -> Option<(PathBuf, PathBuf)> {
    let chromium = PathBuf::from(std::env::var("STILE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    let driver = PathBuf::from(std::env::var("STILE_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into()));
    (chromium.exists() && driver.exists()).then_some((chromium, driver))
}

/// A chromedriver process, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver(path: &PathBuf) -> Driver {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let status = format!("{url}/status");
    let ready = eventually(Duration::from_secs(15), || {
        ureq::get(&status)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_json::<serde_json::Value>().ok())
            .is_some_and(|v| v["value"]["ready"] == true)
    });
    assert!(ready, "chromedriver did not become ready on {url}");
    Driver { child, url }
}

/// Runs `scenario` in a fresh headless Chromium (window 1280×900), or skips it when no
/// Chromium is installed (and `CI` is not `true`). On failure a screenshot is saved.
pub fn in_browser<F, Fut>(test: &str, scenario: F)
where
    F: FnOnce(Page) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some((chromium, driver_path)) = browser_paths() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but Chromium or chromedriver is missing: install chromium and chromium-driver");
        }
        eprintln!(
            "\n*** SKIPPED browser test `{test}`: /usr/bin/chromium or /usr/bin/chromedriver not found \
             (apt-get install chromium chromium-driver, or set STILE_CHROMIUM / STILE_CHROMEDRIVER) ***\n"
        );
        return;
    };
    let driver = start_driver(&driver_path);
    let profile = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("a Chromium session starts");
        let page = Page { client: client.clone() };
        let outcome = tokio::spawn(scenario(page)).await;
        if let Err(err) = outcome {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../browser-screenshots");
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("{test}.png"));
            match client.screenshot().await {
                Ok(png) => {
                    let _ = std::fs::write(&file, png);
                    eprintln!("browser test `{test}` failed; screenshot: {}", file.display());
                }
                Err(e) => eprintln!("browser test `{test}` failed; no screenshot: {e}"),
            }
            let _ = client.close().await;
            std::panic::resume_unwind(err.into_panic());
        }
        let _ = client.close().await;
        drop(driver);
    });
}

/// The page under test, with waits that poll to a deadline.
#[derive(Clone)]
pub struct Page {
    /// The WebDriver session.
    pub client: Client,
}

impl Page {
    /// With `STILE_DOCS_SCREENSHOTS=1`, saves what the page shows to `docs/<name>.png` (how
    /// the screenshots in docs/ are made); otherwise does nothing.
    pub async fn docs_screenshot(&self, name: &str) {
        if std::env::var("STILE_DOCS_SCREENSHOTS").is_ok_and(|v| v == "1") {
            let png = self.client.screenshot().await.expect("a screenshot");
            let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs").join(format!("{name}.png"));
            std::fs::write(&file, png).expect("write the screenshot");
        }
    }

    /// Opens `url`.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("navigates");
    }

    /// The first element matching `css`, waiting for it.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(STEP)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element `{css}` within {STEP:?}: {e}"))
    }

    /// The button whose text is `text`, waiting for it.
    pub async fn button(&self, text: &str) -> Element {
        let xpath = format!("//button[normalize-space()='{text}']");
        self.client
            .wait()
            .at_most(STEP)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no button `{text}` within {STEP:?}: {e}"))
    }

    /// Clicks the button whose text is `text`.
    pub async fn click_button(&self, text: &str) {
        self.button(text).await.click().await.unwrap_or_else(|e| panic!("clicking `{text}`: {e}"));
    }

    /// Clears the input `css` and types `text` into it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input.clear().await.expect("clears");
        input.send_keys(text).await.expect("types");
    }

    /// All elements matching `css` now.
    pub async fn all(&self, css: &str) -> Vec<Element> {
        self.client.find_all(Locator::Css(css)).await.expect("find_all")
    }

    /// The text of the first element matching `css`, once it exists.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    /// Waits until the text of `css` contains `needle`; returns the text.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let end = Instant::now() + STEP;
        let mut last = String::new();
        while Instant::now() < end {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = el.text().await
            {
                if text.contains(needle) {
                    return text;
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("`{css}` did not come to contain {needle:?} within {STEP:?}; last text: {last:?}");
    }

    /// Waits until `css` matches at least `n` elements; returns how many it matched.
    pub async fn wait_count(&self, css: &str, n: usize) -> usize {
        let end = Instant::now() + STEP;
        let mut count = 0;
        while Instant::now() < end {
            count = self.all(css).await.len();
            if count >= n {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("`{css}` matched {count} elements, not {n}, within {STEP:?}");
    }

    /// Waits until `css` matches exactly `n` elements (a list re-rendered after a filter).
    pub async fn wait_exactly(&self, css: &str, n: usize) {
        let end = Instant::now() + STEP;
        let mut count = 0;
        while Instant::now() < end {
            count = self.all(css).await.len();
            if count == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("`{css}` matched {count} elements, not exactly {n}, within {STEP:?}");
    }

    /// Runs a script and returns its value.
    pub async fn script(&self, js: &str) -> serde_json::Value {
        self.client.execute(js, vec![]).await.expect("script runs")
    }

    /// Signs in on the sign-in form with `key`.
    pub async fn sign_in(&self, key: &str) {
        self.type_into("#api-key", key).await;
        self.click_button("Sign in").await;
    }
}
