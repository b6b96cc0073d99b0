use weft::prelude::*;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Artifact)]
struct Rows {
    x: Vec<f64>,
}

#[step]
fn load(limit: usize) -> weft::Result<Rows> {
    tracing::info!("loading {limit}");
    Ok(Rows {
        x: (0..limit).map(|i| i as f64).collect(),
    })
}

#[step(outputs(train, test))]
fn split(rows: Rows, ratio: f64) -> (Rows, Rows) {
    let at = (rows.x.len() as f64 * ratio) as usize;
    (
        Rows {
            x: rows.x[..at].to_vec(),
        },
        Rows {
            x: rows.x[at..].to_vec(),
        },
    )
}

#[step]
fn total(rows: Rows) -> f64 {
    rows.x.iter().sum()
}

#[step]
fn report(totals: Vec<f64>) {
    tracing::info!("totals {totals:?}");
}

#[pipeline]
fn smoke(#[default(10)] limit: usize) -> weft::Result<()> {
    let rows = load(limit)?;
    let (train, test) = split(&rows, 0.8)?;
    let a = total(&train)?;
    let b = total(&test)?;
    report(vec![a, b])?;
    Ok(())
}

#[test]
fn smoke_runs() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::in_folder(dir.path()).unwrap();
    let report = client.run(smoke::args(10)).unwrap();
    for s in &report.step_runs {
        eprintln!("{} {} {:?}", s.invocation, s.status, s.error);
    }
    assert_eq!(report.run.status, weft::Status::Completed);
    let total = client.step_run(&report.run, "total").unwrap();
    let value: f64 = client.output(&total, "output").unwrap().load().unwrap();
    assert_eq!(value, 28.0);
    // plain
    let rows = load(3).unwrap();
    assert_eq!(rows.load().unwrap().x, vec![0.0, 1.0, 2.0]);
}
