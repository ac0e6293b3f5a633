//! The finance desk in a real headless Chromium, driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: commands on the browser's fd 3, answers on its fd 4, each a JSON
//! message ended by a NUL byte), in English and in Arabic: approve a commission, reject one
//! with a reason, create a payout batch, replay a dead letter, each then read back from the
//! API with the signed-in token as its actor; and a form posted with its CSRF field removed,
//! refused (403) with nothing changed.
//!
//! The pages themselves carry no script (their CSP forbids any); only the test drives the
//! browser, as a person would: filling a field, pressing a button.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use api::auth::Role;
use serde_json::{json, Value};

use crate::app::{create_token, TestApp, ADMIN_TOKEN};
use crate::chromium::{chromium_or_skip, sign_in_link, HEADLESS_ARGS};
use crate::desk::{actors_of, dead_letter};
use crate::finance_api::accrue;
use crate::helpers::{temp_dir, Engine};

/// How long one DevTools command, or one page load after a click, may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// A headless Chromium and the pipe to its DevTools.
struct Browser {
    child: Child,
    to_browser: File,
    from_browser: mpsc::Receiver<Value>,
    next_id: u64,
    session_id: String,
    profile: std::path::PathBuf,
}

/// A pipe whose ends are closed on exec (the child gets its copies through `dup2`).
fn pipe() -> (i32, i32) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    (fds[0], fds[1])
}

impl Browser {
    fn launch(chromium: &Path) -> Browser {
        let profile = temp_dir();
        let (commands_read, commands_write) = pipe();
        let (answers_read, answers_write) = pipe();
        let mut command = Command::new(chromium);
        command
            .args(HEADLESS_ARGS)
            .arg("--remote-debugging-pipe")
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                for (from, to) in [(commands_read, 3), (answers_write, 4)] {
                    if libc::dup2(from, to) < 0 || libc::fcntl(to, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("chromium starts");
        // SAFETY: each fd is ours, open, and owned by exactly one File from here on.
        let (to_browser, from_browser) = unsafe {
            libc::close(commands_read);
            libc::close(answers_write);
            (
                File::from_raw_fd(commands_write),
                File::from_raw_fd(answers_read),
            )
        };
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(from_browser);
            loop {
                let mut message = Vec::new();
                match reader.read_until(0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        message.pop();
                        if let Ok(value) = serde_json::from_slice::<Value>(&message) {
                            if sender.send(value).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        let mut browser = Browser {
            child,
            to_browser,
            from_browser: receiver,
            next_id: 0,
            session_id: String::new(),
            profile,
        };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().unwrap().to_owned();
        let attached = browser.call(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        browser.session_id = attached["sessionId"].as_str().unwrap().to_owned();
        browser
    }

    /// Sends one command (to the page's session once attached) and waits for its answer.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let answer = self.send(method, params);
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// One command's whole answer (its `result`, or its `error`).
    fn send(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session_id.is_empty() {
            message["sessionId"] = json!(self.session_id);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .expect("the browser reads commands");
        let started = Instant::now();
        loop {
            let left = STEP_TIMEOUT.saturating_sub(started.elapsed());
            let answer = self
                .from_browser
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method} within {STEP_TIMEOUT:?}"));
            if answer["id"] == json!(id) {
                return answer;
            }
        }
    }

    /// The value of a JavaScript expression evaluated in the page by the test (the page
    /// itself runs none).
    fn eval(&mut self, expression: &str) -> Value {
        // While a page is replaced the old context is gone: that answer is an error, read as
        // null, and the caller polls again.
        let answer = self.send(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        answer["result"]["result"]["value"].clone()
    }

    /// Waits, bounded, until the page at a URL containing `url_part` has loaded.
    fn wait_for(&mut self, url_part: &str) {
        let started = Instant::now();
        loop {
            let state = self.eval("[document.readyState, location.href]");
            if state[0] == "complete" && state[1].as_str().is_some_and(|u| u.contains(url_part)) {
                return;
            }
            assert!(
                started.elapsed() < STEP_TIMEOUT,
                "the page never reached {url_part}: {state}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn open(&mut self, url: &str, url_part: &str) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for(url_part);
    }

    /// Presses the submit button of the form posting to `action` (after `prepare`, a statement
    /// over `form`), then waits for the next page; returns that page's result banner
    /// `(ok, text)`, or its `<main>` text when there is none.
    fn submit(&mut self, action: &str, prepare: &str, then_at: &str) -> (Option<bool>, String) {
        let pressed = self.eval(&format!(
            "(() => {{ const form = document.querySelector('form[action=\"{action}\"]'); \
             if (!form) return false; {prepare}; document.pressed = true; \
             form.querySelector('button[type=submit]').click(); return true; }})()"
        ));
        assert_eq!(pressed, json!(true), "no form posting to {action}");
        let started = Instant::now();
        loop {
            // The next page has loaded once the document we marked is gone.
            let state =
                self.eval("[document.readyState, location.href, document.pressed === true]");
            if state[0] != "complete" || state[2] == json!(true) {
                assert!(
                    started.elapsed() < STEP_TIMEOUT,
                    "no answer after posting to {action}: {state}"
                );
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            let banner = self.eval(
                "(() => { const b = document.getElementById('action-result'); \
                 return b ? [b.dataset.ok === 'true', b.textContent] : null; })()",
            );
            if state[0] == "complete"
                && state[1].as_str().is_some_and(|u| u.contains(then_at))
                && !banner.is_null()
            {
                return (
                    banner[0].as_bool(),
                    banner[1].as_str().unwrap_or("").to_owned(),
                );
            }
            if state[0] == "complete" {
                let forbidden = self.eval(
                    "(() => { const f = document.getElementById('forbidden'); return f ? f.textContent : null; })()",
                );
                if let Some(text) = forbidden.as_str() {
                    return (None, text.to_owned());
                }
            }
            assert!(
                started.elapsed() < STEP_TIMEOUT,
                "no answer after posting to {action}: {state}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

async fn dead_letter_id(app: &TestApp, lead_stream: &str) -> String {
    let listed = app
        .get("/api/webhooks/dead-letters", Some(ADMIN_TOKEN))
        .await;
    let lead = lead_stream.trim_start_matches("lead-");
    listed.body["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["body"].as_str().is_some_and(|b| b.contains(lead)))
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no dead letter for {lead}: {}", listed.text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_finance_desk_in_a_real_browser_acts_in_both_languages_and_refuses_a_form_without_its_token(
) {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let app = crate::app::spawn_app(Engine::Sqlite).await.unwrap();
    let (finance_id, finance) =
        create_token(app.handlers(), Role::Finance, None, Some("desk")).await;
    let actor = format!("token:{finance_id}");
    for lang in ["en", "ar"] {
        let partner = format!("partner-browser-{lang}");
        let (approve_id, _) = accrue(&app, &partner, &format!("lead-approve-{lang}")).await;
        let (reject_id, _) = accrue(&app, &partner, &format!("lead-reject-{lang}")).await;
        let (untouched_id, _) = accrue(&app, &partner, &format!("lead-untouched-{lang}")).await;
        let lead_stream = dead_letter(&app, &format!("dl-{lang}")).await;
        let letter = dead_letter_id(&app, &lead_stream).await;

        let url = sign_in_link(&app, &finance, lang, "/dashboard/commissions").await;
        let base = format!("http://{}", app.address);
        let chromium = chromium.clone();
        let (approve, reject, untouched) =
            (approve_id.clone(), reject_id.clone(), untouched_id.clone());
        let (partner_for_browser, letter_for_browser) = (partner.clone(), letter.clone());
        let results = tokio::task::spawn_blocking(move || {
            let mut browser = Browser::launch(&chromium);
            browser.open(&url, "/dashboard/commissions");
            let dir = browser.eval("document.documentElement.dir");
            assert_eq!(dir, json!(if lang == "ar" { "rtl" } else { "ltr" }));
            let approved = browser.submit(
                &format!("/dashboard/commissions/{approve}/approve"),
                "",
                "/dashboard/commissions",
            );
            let rejected = browser.submit(
                &format!("/dashboard/commissions/{reject}/reject"),
                "form.querySelector('input[name=reason]').value = 'referral was not theirs'",
                "/dashboard/commissions",
            );
            let paid = browser.submit(
                "/dashboard/payouts",
                &format!(
                    "form.querySelector('select[name=partner_id]').value = '{partner_for_browser}'"
                ),
                "/dashboard/commissions",
            );
            // The same approve form with its CSRF field taken out.
            let forged = browser.submit(
                &format!("/dashboard/commissions/{untouched}/approve"),
                "form.querySelector('input[name=csrf]').remove()",
                "/dashboard/commissions",
            );
            browser.open(
                &format!("{base}/dashboard/dead-letters?lang={lang}"),
                "/dashboard/dead-letters",
            );
            let replayed = browser.submit(
                &format!("/dashboard/dead-letters/{letter_for_browser}/replay"),
                "",
                "/dashboard/dead-letters",
            );
            [approved, rejected, paid, forged, replayed]
        })
        .await
        .unwrap();
        let [approved, rejected, paid, forged, replayed] = results;
        let said = |en: &str, ar: &str| {
            if lang == "ar" {
                ar.to_owned()
            } else {
                en.to_owned()
            }
        };
        assert_eq!(approved.0, Some(true), "{lang}: {approved:?}");
        assert!(
            approved
                .1
                .contains(&said("Commission approved", "اعتُمدت العمولة")),
            "{approved:?}"
        );
        assert_eq!(rejected.0, Some(true), "{lang}: {rejected:?}");
        assert!(
            rejected
                .1
                .contains(&said("Commission rejected", "رُفضت العمولة")),
            "{rejected:?}"
        );
        assert_eq!(paid.0, Some(true), "{lang}: {paid:?}");
        assert!(
            paid.1
                .contains(&said("Payout batches created", "أُنشئت دفعات الصرف")),
            "{paid:?}"
        );
        assert_eq!(
            forged.0, None,
            "{lang}: a form without its token was not refused: {forged:?}"
        );
        assert!(
            forged.1.contains(&said("security token", "رمز الحماية")),
            "{forged:?}"
        );
        assert_eq!(replayed.0, Some(true), "{lang}: {replayed:?}");

        // Each, read back from the API, with the finance token as its actor.
        let commission_actors = |id: String| {
            let app = &app;
            async move { actors_of(app, &format!("commission-{id}")).await }
        };
        assert!(commission_actors(approve_id.clone())
            .await
            .contains(&("CommissionApproved".into(), actor.clone())));
        assert!(commission_actors(reject_id.clone())
            .await
            .contains(&("CommissionRejected".into(), actor.clone())));
        let untouched_events = commission_actors(untouched_id.clone()).await;
        assert!(
            untouched_events
                .iter()
                .all(|(t, _)| t == "CommissionAccrued"),
            "{lang}: the refused post changed {untouched_events:?}"
        );
        let payout_id = paid
            .1
            .split(": ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap()
            .to_owned();
        assert_eq!(
            actors_of(&app, &format!("payout-{payout_id}")).await,
            [("PayoutCreated".to_owned(), actor.clone())]
        );
        assert_eq!(
            actors_of(&app, &lead_stream).await.last().unwrap(),
            &("DemoCanceled".to_owned(), actor.clone())
        );
    }
    app.stop().await;
}
