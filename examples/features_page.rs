//! Draws a features report document (the JSON of `modelwatch features report --format
//! json`) as the quarterly review's HTML page, through `modelwatch::report::features_html`.
//!
//! Run: `cargo run --example features_page -- tests/report/features-report.json features.html`
//! (`scripts/screenshots` photographs the page for the README).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: features_page REPORT.json OUT.html");
        return ExitCode::from(2);
    };
    let doc: serde_json::Value = match std::fs::read(input)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("features_page: {input}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match modelwatch::report::features_html(&doc).map(|html| std::fs::write(output, html)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("features_page: {output}: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("features_page: {input}: {e}");
            ExitCode::FAILURE
        }
    }
}
