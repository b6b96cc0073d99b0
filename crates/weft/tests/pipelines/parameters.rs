//! Pipeline and step parameters: types, defaults, configuration files.

use weft::prelude::*;
use weft::{RunConfig, Status};

use crate::{fresh, steps};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Settings {
    name: String,
    depth: u32,
}

#[step]
fn scaled(value: f64, factor: f64) -> f64 {
    value * factor
}

#[step]
fn greet(settings: Settings, greeting: String) -> String {
    format!("{greeting}, {} ({})", settings.name, settings.depth)
}

#[pipeline]
fn configurable(
    value: f64,
    #[default(2.0)] factor: f64,
    #[default(Settings { name: "weft".into(), depth: 3 })] settings: Settings,
) -> weft::Result<()> {
    scaled(value, factor)?;
    scaled::id("tuned").call(value, weft::configured())?;
    greet(settings, "hello".to_string())?;
    Ok(())
}

fn output_of<T: weft::Artifact>(client: &Client, report: &weft::RunReport, invocation: &str) -> T {
    client
        .output(&steps(report)[invocation], "output")
        .unwrap()
        .load()
        .unwrap()
}

#[test]
fn parameters_take_defaults_and_configuration() {
    let (_dir, client) = fresh();
    let config = RunConfig::from_toml("[steps.tuned.parameters]\nfactor = 10.0\n").unwrap();
    let report = client
        .run_with(
            configurable::args(
                1.5,
                2.0,
                Settings {
                    name: "x".into(),
                    depth: 1,
                },
            ),
            &config,
        )
        .unwrap();
    assert_eq!(report.run.status, Status::Completed);
    assert_eq!(output_of::<f64>(&client, &report, "scaled"), 3.0);
    assert_eq!(output_of::<f64>(&client, &report, "tuned"), 15.0);
    assert_eq!(
        output_of::<String>(&client, &report, "greet"),
        "hello, x (1)"
    );
    let tuned = &steps(&report)["tuned"];
    assert_eq!(
        tuned.parameters.value()["factor"],
        10.0,
        "the configured value is recorded"
    );

    // Only `value` is required; parameters can also come from the configuration file.
    let config =
        RunConfig::from_toml("[parameters]\nvalue = 4.0\n[steps.tuned.parameters]\nfactor = 0.5\n")
            .unwrap();
    let report = client
        .run_with(configurable::PIPELINE.call(), &config)
        .unwrap();
    assert_eq!(output_of::<f64>(&client, &report, "scaled"), 8.0);
    assert_eq!(output_of::<f64>(&client, &report, "tuned"), 2.0);
    assert_eq!(
        output_of::<String>(&client, &report, "greet"),
        "hello, weft (3)"
    );
}

fn refused(call: weft::PipelineCall, config: &str) -> String {
    let (_dir, client) = fresh();
    let config = RunConfig::from_toml(config).unwrap();
    let error = client.run_with(call, &config).unwrap_err();
    assert!(client.runs(&Default::default()).unwrap().is_empty());
    format!("{error:#}")
}

#[test]
fn bad_parameters_are_refused_before_anything_runs() {
    let configured = "[steps.tuned.parameters]\nfactor = 1.0\n";
    let missing = refused(configurable::PIPELINE.call(), configured);
    assert!(
        missing.contains("pipeline `configurable` needs parameter `value` (a `f64`)"),
        "{missing}"
    );

    let unknown = refused(
        configurable::PIPELINE.call().param("valeu", &1.0),
        configured,
    );
    assert!(
        unknown.contains("has no parameter `valeu`; its parameters are: value, factor, settings"),
        "{unknown}"
    );

    let ill_typed = refused(
        configurable::PIPELINE.call().param("value", &"fast"),
        configured,
    );
    assert!(
        ill_typed
            .contains("parameter `value` of pipeline `configurable` expects `f64`, got \"fast\""),
        "{ill_typed}"
    );

    let bad_struct = refused(
        configurable::PIPELINE
            .call()
            .param("value", &1.0)
            .param("settings", &serde_json::json!({"name": "x"})),
        configured,
    );
    assert!(bad_struct.contains("missing field `depth`"), "{bad_struct}");

    let bad_step_parameter = refused(
        configurable::args(
            1.0,
            1.0,
            Settings {
                name: "x".into(),
                depth: 1,
            },
        ),
        "[steps.tuned.parameters]\nfactor = \"big\"\n",
    );
    assert!(
        bad_step_parameter
            .contains("parameter `factor` of invocation `tuned` to \"big\", but it expects `f64`"),
        "{bad_step_parameter}"
    );

    let unknown_step = refused(
        configurable::args(
            1.0,
            1.0,
            Settings {
                name: "x".into(),
                depth: 1,
            },
        ),
        "[steps.tunde.parameters]\nfactor = 1.0\n",
    );
    assert!(
        unknown_step.contains("no invocation `tunde` (it has: scaled, tuned, greet)"),
        "{unknown_step}"
    );

    let conflicting = refused(
        configurable::args(
            1.0,
            1.0,
            Settings {
                name: "x".into(),
                depth: 1,
            },
        ),
        "[steps.scaled.parameters]\nfactor = 3.0\n[steps.tuned.parameters]\nfactor = 1.0\n",
    );
    assert!(
        conflicting.contains("the pipeline already passes 1.0"),
        "{conflicting}"
    );
}

#[test]
fn command_line_values_are_json_or_text() {
    let pipeline = weft::find_pipeline("configurable").unwrap();
    assert_eq!(
        pipeline.parse_parameter("value", "1.5"),
        serde_json::json!(1.5)
    );
    assert_eq!(
        pipeline.parse_parameter("value", "fast"),
        serde_json::json!("fast")
    );
    assert_eq!(
        pipeline.parse_parameter("settings", r#"{"name":"a","depth":2}"#),
        serde_json::json!({"name":"a","depth":2})
    );
    let error = weft::find_pipeline("nope").unwrap_err().to_string();
    assert!(
        error.starts_with("unknown pipeline `nope`; this binary has: "),
        "{error}"
    );
    assert!(error.contains("configurable"));
}
