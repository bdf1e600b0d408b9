//! `opencti sim staffing`: the planner over a range of agent counts, as a table and an SVG
//! chart.

use std::path::PathBuf;
use std::process::Command;

fn opencti(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_opencti"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh path for a chart, in the tests' scratch directory.
fn chart_path(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("staffing-{name}.svg"));
    let _ = std::fs::remove_file(&path);
    path
}

/// A row of the table: the agents, then the simulated and the formula's service levels
/// (fractions; `None` where the table shows a dash).
#[derive(Debug, PartialEq)]
struct Row {
    agents: u32,
    simulated: Option<f64>,
    analytic: Option<f64>,
}

/// The table's rows: the lines that start with a number of agents.
fn rows(stdout: &str) -> Vec<Row> {
    let level = |cell: &str| cell.parse::<f64>().ok().map(|p| p / 100.0);
    stdout
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            let agents = cells.first()?.parse().ok()?;
            // "62.3 %" is two cells, "—" one.
            let simulated = level(cells[1]);
            let analytic_at = if simulated.is_some() { 3 } else { 2 };
            Some(Row {
                agents,
                simulated,
                analytic: level(cells[analytic_at]),
            })
        })
        .collect()
}

#[test]
fn a_short_sweep_has_a_row_and_a_marker_per_count_and_more_agents_answer_sooner() {
    let chart = chart_path("short");
    let (ok, stdout, stderr) = opencti(&[
        "sim",
        "staffing",
        "--agents",
        "7..=15",
        "--step",
        "2",
        "--calls-per-hour",
        "480",
        "--aht",
        "60",
        "--patience",
        "120",
        "--hours",
        "4",
        "--target",
        "80",
        "--chart",
        chart.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    for needed in [
        "Staffing for 480 calls/h, handle time 60 s, patience 120 s, service level within 20 s",
        "4 h of arrivals",
        "Erlang A",
        "ASA",
        "abandoned",
        "occupancy",
        "target 80.0 %:",
    ] {
        assert!(stdout.contains(needed), "no {needed:?} in\n{stdout}");
    }
    let rows = rows(&stdout);
    let agents: Vec<u32> = rows.iter().map(|r| r.agents).collect();
    assert_eq!(agents, [7, 9, 11, 13, 15], "{stdout}");
    assert!(
        rows.iter()
            .all(|r| r.simulated.is_some() && r.analytic.is_some()),
        "{stdout}"
    );
    // One short run per count is noisy; the ends of the range are far apart.
    let (fewest, most) = (&rows[0], &rows[rows.len() - 1]);
    assert!(
        fewest.simulated.unwrap() + 0.2 < most.simulated.unwrap(),
        "{stdout}"
    );

    let svg = std::fs::read_to_string(&chart).expect("the chart is written");
    assert!(svg.starts_with("<?xml"), "{svg}");
    assert_eq!(svg.matches("<svg ").count(), 1);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(
        svg.matches("<circle class=\"simulated\"").count(),
        rows.len()
    );
    for row in &rows {
        let marker = format!("<circle class=\"simulated\" data-agents=\"{}\"", row.agents);
        assert_eq!(svg.matches(&marker).count(), 1, "{marker}");
    }
    assert!(svg.contains("class=\"analytic\""));
    assert!(svg.contains("class=\"target\""));
    assert!(stdout.contains(&format!("chart: {}", chart.display())));
}

#[test]
fn over_a_long_enough_run_each_simulated_service_level_is_near_erlang_c() {
    let chart = chart_path("long");
    // 8 Erlangs, a 10 s threshold (so that both sides must use it), 80,000 calls per
    // count after a 10-minute warm-up. Over 30 seeds the simulated service level strayed
    // from Erlang C's by 1.0 percentage point (standard deviation) at 10 agents, less
    // with more agents; 4 points is four of those, while mistaking the threshold for
    // 20 s would move the formula by 8 points at 10 agents.
    let (ok, stdout, stderr) = opencti(&[
        "sim",
        "staffing",
        "--agents",
        "10..=13",
        "--calls-per-hour",
        "480",
        "--aht",
        "60",
        "--calls",
        "80000",
        "--warm-up",
        "600",
        "--service-level",
        "10",
        "--seed",
        "7",
        "--chart",
        chart.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("Erlang C"), "{stdout}");
    assert!(stdout.contains("80000 calls"), "{stdout}");
    let rows = rows(&stdout);
    assert_eq!(rows.len(), 4, "{stdout}");
    for row in &rows {
        let (simulated, analytic) = (row.simulated.unwrap(), row.analytic.unwrap());
        assert!(
            (simulated - analytic).abs() <= 0.04,
            "{} agents: simulated {simulated}, Erlang C {analytic}\n{stdout}",
            row.agents
        );
    }
    // Erlang C at 10 agents, 8 Erlangs, 60 s, 10 s: 1 − 0.40918·e^(−1/3) = 70.7 %.
    assert!((rows[0].analytic.unwrap() - 0.707).abs() < 1e-9, "{stdout}");
}

#[test]
fn counts_that_cannot_keep_up_are_dashes_and_bad_arguments_are_named() {
    let chart = chart_path("unbounded");
    let (ok, stdout, stderr) = opencti(&[
        "sim",
        "staffing",
        "--agents",
        "7..=9",
        "--calls-per-hour",
        "480",
        "--aht",
        "60",
        "--calls",
        "2000",
        "--chart",
        chart.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let rows = rows(&stdout);
    assert_eq!(
        rows[..2],
        [
            Row {
                agents: 7,
                simulated: None,
                analytic: None
            },
            Row {
                agents: 8,
                simulated: None,
                analytic: None
            }
        ],
        "{stdout}"
    );
    assert!(rows[2].simulated.is_some());
    assert!(stdout.contains("grows without bound"), "{stdout}");
    let svg = std::fs::read_to_string(&chart).expect("the chart is written");
    assert_eq!(svg.matches("<circle class=\"simulated\"").count(), 1);

    let (ok, _, stderr) = opencti(&["sim", "staffing", "--agents", "10..30"]);
    assert!(!ok);
    assert!(stderr.contains("10..=30"), "{stderr}");
    let (ok, _, stderr) = opencti(&["sim", "staffing", "--agents", "9..=10", "--target", "120"]);
    assert!(!ok);
    assert!(stderr.contains("percentage"), "{stderr}");
    let nowhere = chart_path("missing-directory/chart");
    let (ok, _, stderr) = opencti(&[
        "sim",
        "staffing",
        "--agents",
        "9..=10",
        "--calls-per-hour",
        "480",
        "--aht",
        "60",
        "--calls",
        "100",
        "--chart",
        nowhere.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("cannot write the chart"), "{stderr}");
}
