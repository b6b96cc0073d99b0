//! The dashboard in a real headless Chromium, driven through ChromeDriver
//! (`WEFT_TEST_CHROMEDRIVER`, else `chromedriver` on the PATH; `scripts/chromium-up.sh`
//! installs both): signing in, the runs list, a running run whose graph changes colour as its
//! steps finish, a failed step's error and log, an artifact's visualizations, a comparison,
//! and hostile text that must never run as script. Screenshots are written to
//! `target/screenshots/` (or `WEFT_TEST_SCREENSHOTS`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::common::{Fixture, HOSTILE, fixture};

/// ChromeDriver on a free port, ended with the test.
struct Driver {
    process: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn driver() -> Driver {
    let program = std::env::var("WEFT_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let process = Command::new(&program)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot start {program} ({error}): install Chromium and ChromeDriver with scripts/chromium-up.sh")
        });
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "ChromeDriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        process,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn browser(driver: &Driver) -> Client {
    let profile = tempfile::tempdir().unwrap().keep();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1400,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

fn shot_folder() -> std::path::PathBuf {
    let folder = std::env::var_os("WEFT_TEST_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots")
        });
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(shot_folder().join(format!("dashboard-{name}.png")), png).unwrap();
}

/// Waits until `script` (a JavaScript expression) is true in the page.
async fn until(client: &Client, what: &str, script: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let value = client
            .execute(&format!("return Boolean({script});"), vec![])
            .await
            .unwrap();
        if value == Value::Bool(true) {
            return;
        }
        if Instant::now() > deadline {
            let text = client
                .execute("return document.body.innerText;", vec![])
                .await
                .unwrap();
            let url = client
                .current_url()
                .await
                .map(|url| url.to_string())
                .unwrap_or_default();
            panic!(
                "timed out waiting for {what} at {url}; the page says:\n{}",
                text.as_str().unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn text(client: &Client) -> String {
    client
        .execute("return document.body.innerText;", vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

/// No hostile text ran as script, in the page or through a frame.
async fn nothing_ran(client: &Client) {
    let ran = client
        .execute(
            "return [window.__xss === undefined, document.title];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        ran,
        json!([true, "weft"]),
        "a script planted in the data ran"
    );
}

async fn sign_in(client: &Client, f: &Fixture, key: &str) {
    client.goto(&format!("{}/runs", f.base)).await.unwrap();
    until(
        client,
        "the sign-in form",
        "document.querySelector('#signin')",
    )
    .await;
    // Nothing of the data shows before signing in.
    assert!(
        !text(client).await.contains("good"),
        "runs are shown signed out"
    );
    let input = client
        .find(Locator::Css("#signin input[name=key]"))
        .await
        .unwrap();
    input.send_keys(key).await.unwrap();
    click(client, "#signin button[type=submit]").await;
}

/// Clicks the element `css` finds.
async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("no `{css}` to click: {error}"))
        .click()
        .await
        .unwrap();
}

/// A browser signed in with `key`, at `path` once the runs list showed.
async fn signed_in_at(chromedriver: &Driver, f: &Fixture, key: &str, path: &str) -> Client {
    let client = browser(chromedriver).await;
    sign_in(&client, f, key).await;
    until(
        &client,
        "the runs list",
        "document.querySelector('table.runs')",
    )
    .await;
    client.goto(&format!("{}{path}", f.base)).await.unwrap();
    client
}

#[test]
fn the_dashboard_signs_in_lists_runs_and_shows_a_failed_step() {
    let f = fixture();
    let chromedriver = driver();
    f.runtime.block_on(async {
        let client = browser(&chromedriver).await;
        // A wrong key is refused with a message.
        client.goto(&format!("{}/", f.base)).await.unwrap();
        until(&client, "the sign-in form", "document.querySelector('#signin')").await;
        let input = client.find(Locator::Css("#signin input[name=key]")).await.unwrap();
        input.send_keys("weft_000000000000_wrong").await.unwrap();
        click(&client, "#signin button").await;
        until(&client, "the refusal", "document.body.innerText.includes('not valid')").await;

        sign_in(&client, &f, &f.viewer).await;
        until(&client, "the runs list", "document.querySelectorAll('table.runs tbody tr').length === 3").await;
        let page = text(&client).await;
        assert!(page.contains("good") && page.contains("bad") && page.contains("hostile"), "{page}");
        assert!(page.contains("count=100"), "parameters are listed: {page}");
        // Hostile parameters show as text.
        assert!(page.contains("onerror="), "{page}");
        let statuses = client
            .execute("return [...document.querySelectorAll('table.runs .badge')].map(b => b.dataset.status);", vec![])
            .await
            .unwrap();
        assert_eq!(statuses, json!(["completed", "failed", "completed"]));
        let tags = client
            .execute("return [...document.querySelectorAll('table.runs td.tags')].map(c => c.innerText.trim());", vec![])
            .await
            .unwrap();
        assert_eq!(tags[1], "", "the failed run has no tags: {tags}");
        assert!(tags[0].as_str().unwrap().contains("onerror=") && tags[2] == "nightly", "{tags}");
        screenshot(&client, "runs").await;
        nothing_ran(&client).await;

        // Filtered by tag through the form; the filter is in the address, so it survives a reload.
        let tag = client.find(Locator::Css("form.filters input[name=tag]")).await.unwrap();
        tag.send_keys("nightly").await.unwrap();
        click(&client, "form.filters button[type=submit]").await;
        until(&client, "the tagged runs", "document.querySelectorAll('table.runs tbody tr').length === 2").await;
        client.refresh().await.unwrap();
        until(&client, "the tagged runs after a reload", "document.querySelectorAll('table.runs tbody tr').length === 2").await;
        let url = client.current_url().await.unwrap();
        assert!(url.as_str().contains("tag=nightly"), "{url}");
        nothing_ran(&client).await;

        // A failed step: its error, its log, by deep link (which survives a reload).
        let url = format!("{}/runs/{}?step={}", f.base, f.bad_run, f.failed_step);
        client.goto(&url).await.unwrap();
        until(&client, "the step panel", "document.querySelector('.step-error')").await;
        until(&client, "the log", "document.querySelectorAll('.log-lines li').length > 0").await;
        client.refresh().await.unwrap();
        until(&client, "the step panel after a reload", "document.querySelector('.step-error')").await;
        until(&client, "the log after a reload", "document.querySelectorAll('.log-lines li').length > 0").await;
        let panel = client
            .execute("return document.querySelector('#panel').innerText;", vec![])
            .await
            .unwrap();
        let panel = panel.as_str().unwrap();
        assert!(panel.contains("broken on 3"), "{panel}");
        assert!(panel.contains("about to fail on 3"), "{panel}");
        assert!(panel.contains("inline, in the orchestrator on"), "where it ran: {panel}");
        let node = client
            .execute("return document.querySelector('.node[data-label=\"broken\"]').dataset.status;", vec![])
            .await
            .unwrap();
        assert_eq!(node, "failed");
        let skipped_or_done = client
            .execute("return document.querySelector('.node[data-label=\"numbers\"]').dataset.status;", vec![])
            .await
            .unwrap();
        assert_eq!(skipped_or_done, "completed");
        screenshot(&client, "failed-step").await;

        // The run names its failed step; the name opens its panel.
        let url = format!("{}/runs/{}", f.base, f.bad_run);
        client.goto(&url).await.unwrap();
        until(&client, "the failed steps", "document.querySelector('#failed-steps')?.innerText === '1 failed: broken'").await;
        click(&client, "#failed-steps a").await;
        until(&client, "the failed step's panel", "document.querySelector('.step-error')").await;
        let url = client.current_url().await.unwrap();
        assert!(url.as_str().contains(&format!("step={}", f.failed_step)), "{url}");
        client.goto(&format!("{}/runs/{}", f.base, f.good_run)).await.unwrap();
        until(&client, "the good run", "document.querySelector('.node')").await;
        let none = client
            .execute("return document.querySelector('#failed-steps').innerText;", vec![])
            .await
            .unwrap();
        assert_eq!(none, json!(""), "a run with no failure names none");

        // The timeline marks the failure.
        client.goto(&format!("{}/runs/{}?view=timeline", f.base, f.bad_run)).await.unwrap();
        until(&client, "the timeline", "document.querySelectorAll('.bar').length === 3").await;
        until(&client, "the failed bar", "document.querySelector('.bar[data-status=failed]')").await;
        screenshot(&client, "timeline").await;

        // Viewers see no actions.
        client.goto(&format!("{}/versions/{}", f.base, f.version)).await.unwrap();
        until(&client, "the version page", "document.body.innerText.includes('Load it')").await;
        let offered = client
            .execute("return Boolean(document.querySelector('input[name=tag]'));", vec![])
            .await
            .unwrap();
        assert_eq!(offered, json!(false), "a viewer is offered to tag");
        client.close().await.unwrap();
    });
}

#[test]
fn a_running_run_changes_colour_as_its_steps_finish() {
    let f = fixture();
    let chromedriver = driver();
    let (run, gate, running) = f.start_watched();
    f.runtime.block_on(async {
        let client = signed_in_at(&chromedriver, &f, &f.viewer, &format!("/runs/{run}")).await;
        until(
            &client,
            "the gated step running",
            "document.querySelector('.node[data-label=\"gated\"][data-status=running]')",
        )
        .await;
        // Its log, followed live.
        click(&client, ".node[data-label=\"gated\"]").await;
        until(
            &client,
            "the running step's log",
            "document.querySelector('.log-lines')?.innerText.includes('waiting for the gate')",
        )
        .await;
        screenshot(&client, "running").await;
        std::fs::write(&gate, b"").unwrap();
        until(
            &client,
            "the new log line",
            "document.querySelector('.log-lines').innerText.includes('the gate is open')",
        )
        .await;
        until(
            &client,
            "the gated step completed",
            "document.querySelector('.node[data-label=\"gated\"][data-status=completed]')",
        )
        .await;
        until(
            &client,
            "the next step shown and completed",
            "document.querySelector('.node[data-label=\"after_gate\"][data-status=completed]')",
        )
        .await;
        until(
            &client,
            "the run completed",
            "document.querySelector('#run-status .badge').dataset.status === 'completed'",
        )
        .await;
        screenshot(&client, "finished").await;
        client.close().await.unwrap();
    });
    running.join().unwrap();

    // A map is one node with its counts, which expands into its items and collapses again.
    let run = f.run_mapped(12);
    f.runtime.block_on(async {
        let client = signed_in_at(&chromedriver, &f, &f.viewer, &format!("/runs/{run}")).await;
        until(&client, "the map's node", "document.querySelector('.node.group')").await;
        let nodes = client
            .execute("return [...document.querySelectorAll('.node')].map(n => n.dataset.label + ':' + n.querySelector('.caption').textContent);", vec![])
            .await
            .unwrap();
        assert_eq!(nodes, json!(["square:×12 · 12 completed", "total:completed"]), "{nodes}");
        screenshot(&client, "map-collapsed").await;
        click(&client, ".node.group").await;
        until(&client, "the map's items", "document.querySelectorAll('.node').length === 13").await;
        // Expanded, it is a deep link.
        client.refresh().await.unwrap();
        until(&client, "the map's items after a reload", "document.querySelectorAll('.node').length === 13").await;
        screenshot(&client, "map-expanded").await;
        client.find(Locator::XPath("//button[text()='collapse square']")).await.unwrap().click().await.unwrap();
        until(&client, "the map collapsed", "document.querySelectorAll('.node').length === 2").await;
        client.close().await.unwrap();
    });
}

#[test]
fn versions_show_their_visualizations_and_runs_compare() {
    let f = fixture();
    let chromedriver = driver();
    let (_, runs) = f.call(
        reqwest::Method::GET,
        "/api/v1/runs?pipeline=hostile",
        Some(&f.viewer),
        None,
    );
    let hostile = runs["runs"][0]["id"].as_str().unwrap().to_owned();
    let (_, detail) = f.call(
        reqwest::Method::GET,
        &format!("/api/v1/runs/{hostile}"),
        Some(&f.viewer),
        None,
    );
    let report = detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["invocation"] == "report")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let report_version = detail["outputs"][0]["artifact_version"]
        .as_str()
        .unwrap()
        .to_owned();
    f.runtime.block_on(async {
        // The histogram of a vector is drawn.
        let client = signed_in_at(&chromedriver, &f, &f.editor, &format!("/versions/{}", f.version)).await;
        until(&client, "the histogram", "[...document.querySelectorAll('.visualizations img')].some(i => i.complete && i.naturalWidth > 0)").await;
        let page = text(&client).await;
        assert!(page.contains("numpy.load"), "the Python line: {page}");
        assert!(page.contains("shape"), "metadata: {page}");
        // An editor tags it, with text that must stay text.
        let input = client.find(Locator::Css("input[name=tag]")).await.unwrap();
        input.send_keys(HOSTILE).await.unwrap();
        click(&client, "form.inline button").await;
        until(&client, "the new tag", "document.querySelector('.tags .tag')").await;
        client.refresh().await.unwrap();
        until(&client, "the tag after a reload", "document.querySelector('.tags .tag')?.innerText.includes('onerror')").await;
        // Its lineage is a graph: this version, the step that read it, what that step wrote.
        until(&client, "the lineage graph", "document.querySelectorAll('.lineage-graph .node').length >= 4").await;
        let lineage = client
            .execute("return [...document.querySelectorAll('.lineage-graph .node')].map(n => n.dataset.label).sort();", vec![])
            .await
            .unwrap();
        assert_eq!(lineage, json!(["good::numbers::output", "good::total::output", "numbers", "total"]), "{lineage}");
        screenshot(&client, "version").await;
        nothing_ran(&client).await;
        click(&client, ".lineage-graph .node[data-label=\"total\"]").await;
        until(&client, "the reading step's panel", "document.querySelector('#panel h2')?.innerText === 'total'").await;
        client.back().await.unwrap();
        until(&client, "the version page again", "document.querySelector('.tags')").await;

        // The hostile run: its log line is text, its HTML report runs nothing and reaches
        // nothing.
        client.goto(&format!("{}/runs/{hostile}?step={report}", f.base)).await.unwrap();
        until(&client, "the step panel", "document.querySelector('#panel h2')").await;
        client.goto(&format!("{}/versions/{report_version}", f.base)).await.unwrap();
        until(&client, "the report frame", "document.querySelector('iframe.html-visualization')").await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        let sandbox = client
            .execute("return document.querySelector('iframe.html-visualization').getAttribute('sandbox');", vec![])
            .await
            .unwrap();
        assert_eq!(sandbox, "", "the frame is sandboxed with nothing allowed");
        nothing_ran(&client).await;
        screenshot(&client, "html-report").await;

        // An editor tags the failed run on its page, and removes a tag again.
        client.goto(&format!("{}/runs/{}", f.base, f.bad_run)).await.unwrap();
        until(&client, "the run page", "document.querySelector('.run-tags input[name=tag]')").await;
        for tag in ["flaky", "to-remove"] {
            let input = client.find(Locator::Css(".run-tags input[name=tag]")).await.unwrap();
            input.send_keys(tag).await.unwrap();
            click(&client, ".run-tags form button").await;
            until(&client, "the new tag", &format!("document.querySelector('.run-tags .tags').innerText.includes('{tag}')")).await;
        }
        click(&client, ".run-tags button[aria-label=\"remove tag to-remove\"]").await;
        until(&client, "the tag removed", "!document.querySelector('.run-tags .tags').innerText.includes('to-remove')").await;
        client.refresh().await.unwrap();
        until(&client, "the tags after a reload", "document.querySelector('.run-tags .tags')?.innerText.includes('flaky')").await;
        let shown = client
            .execute("return document.querySelector('.run-tags .tags').innerText;", vec![])
            .await
            .unwrap();
        assert!(!shown.as_str().unwrap().contains("to-remove"), "{shown}");

        // Comparing the good and the bad run: differences are marked.
        client.goto(&format!("{}/runs", f.base)).await.unwrap();
        until(&client, "the runs list", "document.querySelectorAll('table.runs tbody tr').length === 3").await;
        for run in [&f.good_run, &f.bad_run] {
            click(&client, &format!("tr[data-run=\"{run}\"] input[type=checkbox]")).await;
        }
        client
            .find(Locator::XPath("//button[text()='Compare selected']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        until(&client, "the comparison", "document.querySelector('table.compare')").await;
        let differing = client
            .execute("return [...document.querySelectorAll('table.compare tr.differs th')].map(th => th.innerText);", vec![])
            .await
            .unwrap();
        let differing: Vec<String> = serde_json::from_value(differing).unwrap();
        for expected in ["pipeline", "status", "tags", "broken"] {
            assert!(differing.iter().any(|row| row == expected), "{expected} not marked in {differing:?}");
        }
        assert!(!differing.iter().any(|row| row == "numbers"), "numbers completed in both: {differing:?}");
        screenshot(&client, "compare").await;
        // The comparison is a deep link.
        let url = client.current_url().await.unwrap();
        assert_eq!(url.path(), "/compare", "{url}");
        client.goto(url.as_str()).await.unwrap();
        until(&client, "the comparison after a reload", "document.querySelector('table.compare tr.differs')").await;
        client.close().await.unwrap();
    });
}

#[test]
fn a_long_run_opens_on_its_graph_and_draws_its_timeline_as_it_scrolls() {
    let f = fixture();
    let chromedriver = driver();
    // 3,000 items and their fan-in: more rows than the timeline puts in the page at once.
    let run = f.run_mapped(3000);
    f.runtime.block_on(async {
        // The map is one node, so the page opens on the graph.
        let client = signed_in_at(&chromedriver, &f, &f.viewer, &format!("/runs/{run}")).await;
        until(&client, "the map's node", "document.querySelector('.node.group')").await;
        assert_eq!(
            client.execute("return document.querySelectorAll('.node').length;", vec![]).await.unwrap(),
            json!(2)
        );
        // The timeline has a row per step, but only those near the view are in the page.
        client.goto(&format!("{}/runs/{run}?view=timeline", f.base)).await.unwrap();
        until(&client, "the first rows", "document.querySelectorAll('.bar').length > 0").await;
        let drawn = |script: &'static str| {
            let client = client.clone();
            async move { client.execute(script, vec![]).await.unwrap() }
        };
        let rows = "return [document.querySelector('svg.timeline').dataset.rows, \
                    document.querySelectorAll('.bar').length, \
                    Math.max(...[...document.querySelectorAll('.bar')].map((b) => \
                        Number(b.getAttribute('transform').match(/,([0-9.]+)/)[1]) / 20))];";
        let first = drawn(rows).await;
        assert_eq!(first[0], json!("3001"), "{first}");
        let bars = first[1].as_u64().unwrap();
        assert!(bars > 10 && bars < 1000, "rows in the page: {first}");
        assert!(first[2].as_f64().unwrap() < 1000.0, "{first}");
        // Scrolled to the end, the last rows are drawn, and open their step.
        client
            .execute("const c = document.querySelector('.canvas'); c.scrollTop = c.scrollHeight;", vec![])
            .await
            .unwrap();
        until(
            &client,
            "the last row",
            "[...document.querySelectorAll('.bar')].some((b) => b.getAttribute('transform') === 'translate(0,60000)')",
        )
        .await;
        let last = drawn(rows).await;
        assert!(last[1].as_u64().unwrap() < 1000, "rows in the page: {last}");
        screenshot(&client, "long-timeline").await;
        click(&client, ".bar[transform='translate(0,60000)'] rect").await;
        // The last to start is the fan-in.
        until(
            &client,
            "the fan-in's panel",
            "document.querySelector('#panel h2')?.innerText.includes('total')",
        )
        .await;
        let url = client.current_url().await.unwrap();
        assert!(url.as_str().contains("step="), "{url}");
        client.close().await.unwrap();
    });
    // The fan-in's output read 3,000 versions: its page draws part of its lineage, and says so.
    let output = f.output_of(&run, "total");
    f.runtime.block_on(async {
        let client =
            signed_in_at(&chromedriver, &f, &f.viewer, &format!("/versions/{output}")).await;
        until(
            &client,
            "the lineage graph",
            "document.querySelector('.lineage-graph .node')",
        )
        .await;
        let note = text(&client).await;
        assert!(
            note.contains("larger than this picture")
                && note.contains(&format!("weft lineage {output}")),
            "{note}"
        );
        // The versions the map's items made are one node: the picture has three.
        let nodes = client
            .execute(
                "return [...document.querySelectorAll('.lineage-graph .node')].map((n) => \
                 n.dataset.label + ' ' + n.querySelector('.caption').textContent).sort();",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            nodes,
            json!([
                "mapped::square:*::output ×199 versions",
                "mapped::total::output v1 · this version",
                "total completed"
            ]),
            "{nodes}"
        );
        // The group lists its versions, in item order, each a link to its page.
        click(
            &client,
            ".lineage-graph .node.group[data-label=\"mapped::square:*::output\"]",
        )
        .await;
        until(
            &client,
            "the group's members",
            "document.querySelectorAll('.lineage-members li').length === 199",
        )
        .await;
        let first = client
            .execute(
                "const items = [...document.querySelectorAll('.lineage-members li a')]; \
                 return [items[0].textContent, items[1].textContent, items[0].getAttribute('href')];",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(first[0], "mapped::square:0::output", "{first}");
        assert_eq!(first[1], "mapped::square:1::output", "{first}");
        let href = first[2].as_str().unwrap().to_owned();
        assert!(href.starts_with("/versions/"), "{href}");
        screenshot(&client, "long-lineage").await;
        click(&client, ".lineage-members li a").await;
        until(
            &client,
            "the member's page",
            &format!("location.pathname === '{href}' && document.querySelector('h1')?.innerText.includes('square:0')"),
        )
        .await;
        client.close().await.unwrap();
    });
}

#[test]
fn a_map_that_grows_while_watched_ends_with_every_item_shown() {
    let f = fixture();
    let chromedriver = driver();
    let (run, gate, running) = f.start_map_after_gate(3000);
    f.runtime.block_on(async {
        let client = signed_in_at(&chromedriver, &f, &f.viewer, &format!("/runs/{run}")).await;
        until(
            &client,
            "the gated step running",
            "document.querySelector('.node[data-label=\"gated\"][data-status=running]')",
        )
        .await;
        // The map's 3,000 items and the fan-in appear while the page watches; at the end the
        // page shows them all, finished, and the run completed.
        std::fs::write(&gate, b"").unwrap();
        until(
            &client,
            "every item completed",
            "document.querySelector('.node.group .caption')?.textContent === '×3000 · 3000 completed'",
        )
        .await;
        until(
            &client,
            "the fan-in completed",
            "document.querySelector('.node[data-label=\"total\"][data-status=completed]')",
        )
        .await;
        until(
            &client,
            "the run completed",
            "document.querySelector('#run-status .badge').dataset.status === 'completed'",
        )
        .await;
        client.close().await.unwrap();
    });
    running.join().unwrap();
}

#[test]
fn a_one_time_link_signs_in_once() {
    let f = fixture();
    let chromedriver = driver();
    f.runtime.block_on(async {
        let token = f.one_time.clone();
        let client = browser(&chromedriver).await;
        client
            .goto(&format!("{}/signin?token={token}", f.base))
            .await
            .unwrap();
        until(
            &client,
            "the runs list",
            "document.querySelectorAll('table.runs tbody tr').length === 3",
        )
        .await;
        assert!(text(&client).await.contains("signed in as editor"));
        client.close().await.unwrap();
        // The same link again, in another browser, leads to the sign-in form.
        let other = browser(&chromedriver).await;
        other
            .goto(&format!("{}/signin?token={token}", f.base))
            .await
            .unwrap();
        until(
            &other,
            "the sign-in form",
            "document.querySelector('#signin')",
        )
        .await;
        assert!(text(&other).await.contains("used already or expired"));
        other.close().await.unwrap();
    });
}
