//! `weft logs <run> <step>`.

use weft::Client;

use crate::render;

#[derive(clap::Args)]
pub(crate) struct Arguments {
    /// A run id (or unique prefix), a run name, or `latest`.
    run: String,
    /// The step's invocation id (as `weft runs show` lists it), or a step run id prefix.
    step: String,
    /// Print JSON: an array of records.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(client: &Client, arguments: Arguments, out: &mut String) -> anyhow::Result<()> {
    let run = client.run_record(&arguments.run)?;
    let step_run = client.step_run(&run, &arguments.step)?;
    let records = client.logs(&step_run)?;
    if arguments.json {
        return render::json(out, &records);
    }
    if records.is_empty() {
        eprintln!(
            "step `{}` of run {} logged nothing",
            step_run.invocation, run.id
        );
    }
    for record in records {
        let fields: Vec<String> = record
            .fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let fields = if fields.is_empty() {
            String::new()
        } else {
            format!(" {}", fields.join(" "))
        };
        say!(
            out,
            "{} {:>5} {}: {}{fields}",
            record.time,
            record.level,
            record.target,
            record.message
        );
    }
    Ok(())
}
