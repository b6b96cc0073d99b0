//! The README's own materializer, as written there: it compiles with `weft` alone, round
//! trips through a real artifact store, and explains a file it cannot read.

use std::io::Read;
use weft::materializers::{
    Artifact, ArtifactReader, ArtifactWriter, Materializer, Result, VisualizationType,
};

struct Points(Vec<(i64, i64)>);
struct PointsCsv;

impl Materializer<Points> for PointsCsv {
    const ID: &'static str = "example.points-csv"; // recorded on every version
    const VERSION: u32 = 1; // bump when the files change

    fn save(value: &Points, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        writer.write_file("points.csv", |file| {
            writeln!(file, "x,y")?; // any error converts with `?`
            for (x, y) in &value.0 {
                writeln!(file, "{x},{y}")?;
            }
            Ok(())
        })?;
        writer.describe("points", value.0.len()); // metadata of the version, queryable
        Ok(())
    }

    // Optional: documents shown beside the data (`weft artifacts visualize`).
    fn visualize(value: &Points, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        writer.write_visualization("points.svg", VisualizationType::Svg, |file| {
            write!(
                file,
                r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="-10 -10 20 20">"#
            )?;
            for (x, y) in &value.0 {
                write!(file, r#"<circle cx="{x}" cy="{y}" r="0.5"/>"#)?;
            }
            Ok(write!(file, "</svg>")?)
        })
    }

    fn load(reader: &mut ArtifactReader<'_>) -> Result<Points> {
        let file = reader.open("points.csv")?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| file.decode_error(e))?;
        let points = text.lines().skip(1).map(|line| {
            let (x, y) = line.split_once(',').unwrap_or((line, ""));
            Ok((
                x.parse().map_err(|e| file.decode_error(e))?,
                y.parse().map_err(|e| file.decode_error(e))?,
            ))
        });
        Ok(Points(points.collect::<Result<_>>()?))
    }
}

impl Artifact for Points {
    type Materializer = PointsCsv;
}

#[test]
fn the_readmes_materializer_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let client = weft::Client::in_folder(dir.path()).unwrap();
    // Every file a file (a value this small is otherwise kept in its record), so that the
    // test can damage one on disk.
    let store = client.artifact_store().clone().with_inline_limit(0);
    let points = Points(vec![(1, 2), (-3, 4)]);
    let saved = store.save(&["p", "s", "output", "1"], &points).unwrap();
    let loaded: Points = store.load(&saved.to_stored()).unwrap();
    assert_eq!(loaded.0, points.0);
    assert_eq!(saved.materializer, "example.points-csv");
    assert_eq!(saved.metadata["points"], serde_json::json!(2));
    let svg = &saved.files[1];
    assert_eq!(
        (svg.name.as_str(), svg.visualization),
        ("points.svg", Some(VisualizationType::Svg))
    );
    let drawn = store
        .read_head(&saved.to_stored(), "points.svg", 4096)
        .unwrap();
    assert!(
        String::from_utf8(drawn)
            .unwrap()
            .contains(r#"<circle cx="-3" cy="4""#)
    );

    // A file that does not parse, its recorded hash updated so that only the decoder objects:
    // the error names the file, the type and the materializer by itself.
    let path = dir.path().join("artifacts/p/s/output/1/points.csv");
    let bad = b"x,y\nnot,a point\n";
    std::fs::write(&path, bad).unwrap();
    let mut stored = saved.to_stored();
    stored.files[0].size = bad.len() as u64;
    stored.files[0].blake3 = weft::materializers::Digest::of(bad);
    let Err(error) = store.load::<Points>(&stored) else {
        panic!("a file that does not parse loaded")
    };
    let error = error.to_string();
    assert!(
        error.contains("points.csv")
            && error.contains("example.points-csv")
            && error.contains("Points")
            && error.contains("invalid digit"),
        "{error}"
    );
}
